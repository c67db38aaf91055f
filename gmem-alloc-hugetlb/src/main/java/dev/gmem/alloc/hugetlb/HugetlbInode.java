package dev.gmem.alloc.hugetlb;

import dev.gmem.api.Errno;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.spi.FolioAllocator;
import dev.gmem.api.spi.HostMemory;

/**
 * One inode's huge pages: a hugetlbfs memfd reserved whole at creation, folios allocated and freed
 * in the real file, split state in a {@link SplitTracker}. The split is gmem's: the kernel's
 * hugetlb page stays whole (user space cannot split it), and what changes is the folio structure
 * core keeps, the page size the guest may map and the host mapping's granularity.
 */
final class HugetlbInode implements FolioAllocator.Inode {
  /** {@code FALLOC_FL_KEEP_SIZE}. */
  private static final int KEEP_SIZE = 0x01;
  /** {@code FALLOC_FL_PUNCH_HOLE}. */
  private static final int PUNCH_HOLE = 0x02;

  private final HugePageSize size;
  private final HostMemory.MemoryFile file;
  private final SplitTracker splits;

  HugetlbInode(HugePageSize size, HostMemory.MemoryFile file, SplitTracker splits) {
    this.size = size;
    this.file = file;
    this.splits = splits;
  }

  @Override
  public int folioOrder() {
    return size.order();
  }

  @Override
  public HostMemory.MemoryFile memory() {
    return file;
  }

  /**
   * {@code alloc_folio}: instantiates the huge page in the file from the inode's reservation
   * ({@code fallocate} zeroes it). The reservation is renewed first, in case a page the kernel
   * instantiated behind gmem's back (a raw host access, or a real KVM guest through its memslot)
   * was punched without {@link #freeFolio}; where it is intact that costs an mmap and a munmap.
   */
  @Override
  public void allocFolio(long index) {
    instantiate(index);
    splits.markAllocated(index);
  }

  /**
   * As {@link #allocFolio}, with a handle: the huge page is the file's page at {@code index},
   * so a folio given back before core commits it (a failed split preparation; core serialises
   * the faults of one huge page, so it never loses a race for one) is punched and unmarked.
   */
  @Override
  public FolioAllocator.Allocation allocate(long index) {
    allocFolio(index);
    long start = index & -(1L << size.order());
    return new FolioAllocator.Allocation() {
      @Override
      public void commit() {}

      @Override
      public void free() {
        punchAndReserve(start);
        splits.release(start);
      }
    };
  }

  private void instantiate(long index) {
    long offset = index << Folio.PAGE_SHIFT;
    try {
      PoolReservation.reserve(file, offset, size.bytes());
      file.fallocate(KEEP_SIZE, offset, size.bytes());
    } catch (GmemException e) {
      // hugetlbfs says ENOSPC when no page can be had; a fault would get VM_FAULT_OOM.
      throw e.errno() == Errno.ENOSPC || e.errno() == Errno.ENOMEM
          ? new GmemException(Errno.ENOMEM, "no " + size + " huge page for page " + index + ": " + e.getMessage(), e)
          : e;
    }
  }

  /**
   * {@code free_folio}: a whole huge page goes back to the pool at once; pieces of a split one
   * (an inode evicted split) when the last of them comes back, as upstream merges freed pages
   * before returning the huge page. The page stays reserved for the inode, as in a subpool.
   */
  @Override
  public void freeFolio(long index, int order) {
    long start = index & -(1L << size.order());
    if (order < size.order() && !splits.freePart(index, order)) {
      return;
    }
    punchAndReserve(start);
    splits.release(start);
  }

  private void punchAndReserve(long start) {
    long offset = start << Folio.PAGE_SHIFT;
    try {
      // Core's punch has freed the page already (a no-op here); at eviction it has not.
      file.fallocate(KEEP_SIZE | PUNCH_HOLE, offset, size.bytes());
      PoolReservation.reserve(file, offset, size.bytes());
    } catch (GmemException e) {
      // Cannot fail on a valid range; if another process took the freed page before we could
      // reserve it again, allocFolio reserves anew (or reports ENOMEM) when the page is next needed.
    }
  }

  @Override
  public int splitOrder(int order) {
    return splits.splitOrder(order);
  }

  @Override
  public FolioAllocator.Restructure prepareSplit(long index, int order, int newOrder) {
    return splits.prepareSplit(index, order, newOrder);
  }

  @Override
  public FolioAllocator.Restructure prepareMerge(long index, int order) {
    return splits.prepareMerge(index, order);
  }

  /** The folio order this allocator tracks for page {@code index}, -1 when none (diagnostics). */
  int orderAt(long index) {
    return splits.orderAt(index);
  }

  SplitTracker tracker() {
    return splits;
  }

  /** The split tracker's bytes: per split huge page its pieces' records. */
  @Override
  public long trackingBytes() {
    return splits.estimatedBytes();
  }

  HugePageSize pageSize() {
    return size;
  }

  /** {@code inode_teardown}: closing the file gives pages and reservation back once no mapping holds it. */
  @Override
  public void close() {
    file.close();
  }
}
