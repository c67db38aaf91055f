package dev.gmem.api.spi;

import dev.gmem.api.Api;

/**
 * Told when folios enter and leave an inode's filemap ({@code filemap_add_folio} /
 * {@code ->free_folio}), e.g. to zap and restore direct-map entries. Called under the inode's
 * invalidate lock; must not block on guest or host faults.
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public interface FilemapListener {

  /** A folio of {@code order} at {@code index} of inode {@code ino} was added, with creation {@code flags}. */
  default void folioAdded(long ino, long flags, long index, int order) {}

  /** The folio at {@code index} left the filemap. Must not fail. */
  default void folioRemoved(long ino, long flags, long index, int order) {}
}
