package dev.gmem.core.inode;

/**
 * A memslot's guest mappings of an inode's pages that gmem keeps itself (the stand-in for stage 2
 * of slots with a feature flag): {@code kvm_gmem_invalidate_begin} unmaps them over the bindings.
 */
public interface GuestMappings {

  /**
   * File pages {@code [start, end)} change (punch, conversion): unmap the guest mappings of those
   * this covers, so that the next guest access to one faults again. Called with the invalidate
   * lock held exclusive; cannot fail.
   */
  void unmap(long start, long end);
}
