package dev.gmem.api;

/**
 * A snapshot of one folio of an inode's filemap: a naturally aligned run of {@code 1 << order}
 * pages starting at page {@code index}.
 *
 * @param index    first page index (aligned to {@code 1 << order})
 * @param order    0 = 4 KiB, {@link #PMD_ORDER} = 2 MiB, {@link #PUD_ORDER} = 1 GiB
 * @param refcount references beyond the filemap's own (mappings in use, pins)
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public record Folio(long index, int order, int refcount) {
  public static final int PAGE_SHIFT = 12;
  public static final long PAGE_SIZE = 1L << PAGE_SHIFT;
  /** Order of a 2 MiB folio, the size one x86-64 page-middle-directory entry maps. */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  public static final int PMD_ORDER = 9;
  /** Order of a 1 GiB folio, the size one x86-64 page-upper-directory entry maps. */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  public static final int PUD_ORDER = 18;

  public long nrPages() {
    return 1L << order;
  }

  public long size() {
    return PAGE_SIZE << order;
  }

  public long offset() {
    return index << PAGE_SHIFT;
  }
}
