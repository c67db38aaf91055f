package dev.gmem.api.spi;

import dev.gmem.api.Api;
import dev.gmem.api.VmType;

/**
 * What gmem-core offers an arch about the VM it serves, for failures after a point of no return
 * that must not be hidden. Implemented by core; handed to
 * {@link ArchProvider#create(VmType, HostMemory, ArchContext)}. Thread-safe.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public interface ArchContext {

  /** The VM's type. */
  VmType vmType();

  /**
   * The firmware could not give pages {@code [first, first+nrPages)} back (SNP: RMPUPDATE to
   * shared failed, {@code snp_leak_pages}; TDX: PAGE.REMOVE or WBINVD failed). gmem then never
   * returns them to the allocator nor to the kernel while the inode lives, never hands them out
   * again (a later fault on such a page fails with EHWPOISON), covers them in every host mapping,
   * and counts them ({@link dev.gmem.api.GuestMemInode#leakedPages()}). Every page of a folio that
   * holds a leaked page is leaked with it. Allowed from any hook, typically from
   * {@link ArchHooks#invalidate(GmemPage, long)}; never fails.
   */
  void leak(GmemPage first, long nrPages, String reason);

  /**
   * {@code KVM_BUG_ON}: the VM is dead. Every later call on it and its vCPUs (software vCPU and
   * GPA view included) fails with EIO; closing works. Its files stay usable as files (fallocate,
   * mmap, conversion), since the memory is the inode's, as after a context move. Idempotent; the
   * first reason is kept.
   */
  void bug(String reason);

  /** Whether {@link #bug} was called. */
  boolean isDead();
}
