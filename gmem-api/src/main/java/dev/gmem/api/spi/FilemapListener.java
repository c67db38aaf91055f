package dev.gmem.api.spi;

import dev.gmem.api.Api;

/**
 * Told when folios enter and leave an inode's filemap ({@code filemap_add_folio} /
 * {@code ->free_folio}), e.g. to zap and restore direct-map entries, and when they change size.
 * Called under the inode's invalidate lock; must not block on guest or host faults.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.1")
public interface FilemapListener {

  /** A folio of {@code order} at {@code index} of inode {@code ino} was added, with creation {@code flags}. */
  default void folioAdded(long ino, long flags, long index, int order) {}

  /**
   * {@code nrFolios} folios of {@code order} at {@code index}, {@code index + 2^order}, ... of
   * inode {@code ino} were added, in one go (a huge block handed out as small folios, a
   * {@code write()} over a run of absent pages). Core calls this once per such run instead of
   * {@link #folioAdded} per folio, so a listener can act once for the run (one {@code mprotect});
   * the default calls {@link #folioAdded} for each folio in index order, so listeners written
   * against 0.1 keep working unchanged.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default void foliosAdded(long ino, long flags, long index, long nrFolios, int order) {
    for (long i = 0; i < nrFolios; i++) {
      folioAdded(ino, flags, index + (i << order), order);
    }
  }

  /** The folio at {@code index} left the filemap. Must not fail. */
  default void folioRemoved(long ino, long flags, long index, int order) {}

  /**
   * The folio of {@code order} at {@code index} was split into folios of {@code newOrder}
   * (conversion to shared, or a huge page handed out split). Same pages, same memory: a listener
   * that tracks per-folio state re-keys it. Must not fail.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default void folioSplit(long ino, long flags, long index, int order, int newOrder) {}

  /**
   * The folios of {@code [index, index + 2^order)} were merged into one folio of {@code order}
   * (conversion to private, or before a punch frees a huge page). Must not fail.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default void folioMerged(long ino, long flags, long index, int order) {}

  /**
   * {@code kvm_gmem_invalidate_begin}: pages {@code [start, end)} of inode {@code ino} are about to
   * change (punch, conversion) and every guest mapping of them is unmapped, so a guest's next
   * access faults again. A feature that stands in for stage 2 (KVM Userfault's "already mapped"
   * pages) forgets them here. Under the exclusive invalidate lock; must not fail or block.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default void invalidated(long ino, long flags, long start, long end) {}

  /**
   * Inode {@code ino} was evicted: its last reference went, every folio was removed (after
   * {@link #folioRemoved}) and its memory is being released; also when a creation failed after
   * {@link Feature#memory(long, long, long)} was asked for that number. Per-inode state can go.
   * Must not fail.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default void inodeEvicted(long ino, long flags) {}
}
