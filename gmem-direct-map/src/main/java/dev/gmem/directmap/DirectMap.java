package dev.gmem.directmap;

import dev.gmem.api.Api;
import dev.gmem.api.GmemRuntime;
import java.util.List;
import java.util.Optional;

/**
 * The direct-map feature's own API, reached with {@code runtime.feature(DirectMap.class)}: what it
 * removes, where the pages of each NO_DIRECT_MAP inode are, and its counters.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public interface DirectMap {

  /** Which layers NO_DIRECT_MAP removes on this host, one line each (for {@code gmem info}). */
  List<String> layers();

  /** Counters over the runtime's life. */
  DirectMapStats stats();

  /** Accounting of a live NO_DIRECT_MAP inode whose memory the feature supplied. */
  Optional<InodeAccounting> accounting(long ino);

  /** Whether page {@code index} of inode {@code ino} is removed from gmem's direct map now. */
  boolean isRemoved(long ino, long index);

  /**
   * A scoped temporary mapping of pages {@code [index, index + nrPages)} of live inode {@code ino}
   * ({@code kmap_local}): how framework code — an emulator reading an instruction, a populate
   * step — reaches folios removed from gmem's direct map. Counted in
   * {@link DirectMapStats#temporaryMappings()}; EINVAL for an unknown inode or a range beyond it.
   */
  dev.gmem.api.spi.TemporaryMapping mapTemporarily(long ino, long index, long nrPages);

  /**
   * Whether a real vCPU runs on NO_DIRECT_MAP memory of {@code rt}'s backend, found by running
   * one (cached per runtime): see {@link SecretVcpuProbe}.
   */
  SecretVcpuProbe.Result realVcpu(GmemRuntime rt);

  /**
   * Memory of one NO_DIRECT_MAP inode, in pages: {@code present} in the filemap (removed from
   * gmem's direct map), {@code resident} secret pages the kernel holds for it, and of those
   * {@code held} ones that left the filemap (punched: zeroed, but secret memory cannot be freed
   * before the inode goes).
   */
  record InodeAccounting(long ino, long nrPages, long present, long resident, long held) {}
}
