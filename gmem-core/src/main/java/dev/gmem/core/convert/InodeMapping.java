package dev.gmem.core.convert;

/**
 * A host mapping as its inode sees it: what a conversion covers (to private) and maps back (to
 * shared). Defined here, beside its one consumer, so that the engine needs nothing of the inode
 * package; the inode keeps the list and the runtime closes them.
 */
public interface InodeMapping extends AutoCloseable {

  /** File offset of the first mapped byte. */
  long offset();

  /** Length of the mapping in bytes. */
  long length();

  /**
   * Prepares making file pages {@code [startPage, endPage)} inaccessible ({@code accessible}
   * false: the conversion to private) or accessible again (the conversion to shared) for raw users
   * of this mapping; on huge-page memory in whole huge pages. Everything that can fail happens
   * here (ENOMEM: gmem's share of {@code vm.max_map_count}, the spare mapping a remap moves into
   * place); the returned change applies without failing. Called with the invalidate lock held
   * exclusive; the change must be applied or aborted before it is released.
   */
  MappingChange prepareAccess(long startPage, long endPage, boolean accessible);

  /**
   * Covers file pages {@code [startPage, endPage)} at once: they left the inode for good (the arch
   * leaked them). Runs after a point of no return and cannot fail.
   */
  void retire(long startPage, long endPage);

  /** Unmaps; idempotent. */
  @Override
  void close();
}
