package dev.gmem.core.inode;

/**
 * A guest mapping of an inode's pages that the kernel uses as stage 2 and that must lose the
 * pages an invalidation covers, as KVM's MMU notifier zaps its stage-2 entries: called by
 * {@link GuestMemInodeImpl#invalidateBegin} (under the exclusive invalidate lock, before the pages
 * change) with the inode's page range {@code [start, end)}. Must not fail.
 */
@FunctionalInterface
public interface StageTwoZap {
  void zap(long start, long end);
}
