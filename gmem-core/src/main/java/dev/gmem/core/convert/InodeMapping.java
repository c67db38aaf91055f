package dev.gmem.core.convert;

/**
 * A host mapping as its inode sees it: what a conversion zaps (to private) and maps back (to
 * shared). Defined here, beside its one consumer, so that the engine needs nothing of the inode
 * package; the inode keeps the list and the runtime closes them.
 */
public interface InodeMapping extends AutoCloseable {

  /** File offset of the first mapped byte. */
  long offset();

  /** Length of the mapping in bytes. */
  long length();

  /**
   * Makes file pages {@code [startIndex, endIndex)} accessible or inaccessible in this mapping; on
   * huge-page memory in whole huge pages (see {@code dev.gmem.core.mapping.HostMappingImpl}).
   */
  void setAccessible(long startIndex, long endIndex, boolean accessible);

  /** Unmaps; idempotent. */
  @Override
  void close();
}
