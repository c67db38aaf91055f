package dev.gmem.alloc.hugetlb;

import dev.gmem.api.Errno;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The kernel memory a split costs upstream, accounted so that a split can fail with ENOMEM as it
 * does there. HugeTLB Vmemmap Optimization keeps one page of a huge page's {@code struct page}
 * array (64 bytes per 4 KiB page) and frees the rest; a split must restore the array for every
 * new folio below 2 MiB (and one page per new folio of 2 MiB or more), and stash the hugetlb
 * metadata. So splitting 2 MiB to 4 KiB costs 28 KiB, 1 GiB to 4 KiB ~16 MiB, but 1 GiB to 2 MiB
 * only ~2 MiB — which is why 1 GiB pages split in stages. A merge gives the memory back.
 *
 * <p>User space needs none of that memory, so the model is only accounting; the limit (unlimited
 * in production) lets tests make splits fail for real. Thread-safe.
 */
final class MetadataBudget {
  /** {@code sizeof(struct page)}. */
  static final long STRUCT_PAGE = 64;
  /** Upstream's stash entry (an xarray slot with subpool, cgroup, hwpoison and flags). */
  static final long STASH_ENTRY = 64;
  /** The smallest order HVO applies to: a 2 MiB hugetlb folio. */
  private static final int HVO_ORDER = Folio.PMD_ORDER;

  private final long limit;
  private final AtomicLong used = new AtomicLong();

  MetadataBudget(long limit) {
    this.limit = limit;
  }

  /** Bytes a split of one folio of {@code order} into folios of {@code newOrder} needs. */
  static long splitCost(int order, int newOrder) {
    return (1L << (order - newOrder)) * vmemmapBytes(newOrder) - vmemmapBytes(order) + STASH_ENTRY;
  }

  /** The {@code struct page} memory a folio keeps: one page under HVO, else the whole array. */
  private static long vmemmapBytes(int order) {
    return order >= HVO_ORDER ? Folio.PAGE_SIZE : STRUCT_PAGE << order;
  }

  /** Takes {@code bytes}, or fails with ENOMEM at {@code offset} when the limit would be passed. */
  void charge(long bytes, long offset) {
    for (;;) {
      long u = used.get();
      if (u + bytes > limit || u + bytes < 0) {
        throw GmemException.atOffset(Errno.ENOMEM, offset, "no memory for huge page split metadata (" + bytes + " bytes; "
            + u + " of " + limit + " in use)");
      }
      if (used.compareAndSet(u, u + bytes)) {
        return;
      }
    }
  }

  void release(long bytes) {
    used.addAndGet(-bytes);
  }

  /** Bytes charged now. */
  long used() {
    return used.get();
  }
}
