package dev.gmem.api.spi;

import dev.gmem.api.Api;
import dev.gmem.api.GmemException;
import dev.gmem.api.HostInfo;
import dev.gmem.api.HugePagePool;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * Host-memory services gmem-core hands to plugins so they need not bind libc themselves: memfds
 * (including hugetlbfs and secret memory), mappings, protection changes, hole punching. Every
 * resource has one {@link AutoCloseable} owner.
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public interface HostMemory {

  HostInfo host();

  /** {@code memfd_create(name, flags)} sized with {@code ftruncate}; flags are the kernel's MFD_* bits. */
  MemoryFile createMemfd(String name, int flags, long size) throws GmemException;

  /**
   * The host's hugetlb pools as they are now, ascending by page size. {@link HostInfo#hugePagePools()}
   * is a snapshot from runtime start; an allocator that reserves pages needs the current counters.
   * The default answers with that snapshot.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.1")
  default List<HugePagePool> hugePagePools() {
    return host().hugePagePools();
  }

  /** {@code memfd_secret(0)} sized with {@code ftruncate}: memory removed from the kernel direct map. */
  MemoryFile createSecretMemory(long size) throws GmemException;

  /**
   * A scoped temporary mapping of pages {@code [first.index(), first.index() + nrPages)} of a live
   * inode of this runtime (see {@link TemporaryMapping}): EINVAL for an unknown inode or a range
   * beyond its end. The default, for hosts without inodes, refuses with EOPNOTSUPP.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default TemporaryMapping mapTemporarily(GmemPage first, long nrPages) throws GmemException {
    throw new GmemException(dev.gmem.api.Errno.EOPNOTSUPP, "this host offers no temporary mappings");
  }

  /** The runtime's temporary-mapping counters; the default has none. */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default TemporaryMapping.Stats temporaryMappingStats() {
    return TemporaryMapping.Stats.NONE;
  }

  /** An fd with its size. Closing closes the fd; mappings keep the memory alive. */
  @Api(status = Api.Status.STABLE, since = "0.1")
  interface MemoryFile extends AutoCloseable {
    int fd();

    long size();

    /** {@code mmap(NULL, length, prot, MAP_SHARED | extraFlags, fd, offset)}. */
    Mapping map(long offset, long length, int prot, int extraFlags) throws GmemException;

    /** {@code fallocate(fd, mode, offset, length)}. */
    void fallocate(int mode, long offset, long length) throws GmemException;

    @Override
    void close();
  }

  /** A mapping; closing unmaps it. */
  @Api(status = Api.Status.STABLE, since = "0.1")
  interface Mapping extends AutoCloseable {
    long address();

    long length();

    void protect(long offset, long length, int prot) throws GmemException;

    void advise(long offset, long length, int advice) throws GmemException;

    /** A direct view; never use it after {@link #close()}. */
    ByteBuffer buffer(long offset, int length);

    @Override
    void close();
  }
}
