package dev.gmem.core.inode;

/** A host mapping as its inode sees it: what conversion must re-protect. */
public interface InodeMapping {

  /** File offset of the first mapped byte. */
  long offset();

  long length();

  /**
   * Makes file pages {@code [startPage, endPage)} accessible or inaccessible in this mapping; on
   * huge-page memory in whole huge pages (see {@link dev.gmem.core.mapping.HostMappingImpl}).
   */
  void setAccessible(long startPage, long endPage, boolean accessible);
}
