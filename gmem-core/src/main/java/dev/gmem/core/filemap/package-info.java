/**
 * Per-inode page cache: {@link dev.gmem.core.filemap.Filemap}, index → folio with split, merge,
 * prepared flags and sparse reference counts, compact enough that no 4 KiB page costs an object.
 */
package dev.gmem.core.filemap;
