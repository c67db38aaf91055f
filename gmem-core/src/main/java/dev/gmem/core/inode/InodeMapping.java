package dev.gmem.core.inode;

/** A host mapping as its inode sees it: what conversion must re-protect. */
public interface InodeMapping {

  /** File offset of the first mapped byte. */
  long offset();

  long length();

  /** Makes file pages {@code [start, end)} inaccessible (true) or accessible (false) in this mapping. */
  void setAccessible(long startPage, long endPage, boolean accessible);
}
