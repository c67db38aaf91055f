package dev.gmem.api.spi;

import dev.gmem.api.Api;
import dev.gmem.api.GmemException;

/**
 * Mirrors upstream {@code struct guestmem_allocator_operations}: per-inode setup and teardown,
 * folio allocation and freeing, split and merge. gmem-core keeps the filemap (index → folio); the
 * allocator owns the memory and its accounting.
 *
 * <p>Split and merge are two-phase so that conversion can do everything fallible before its point
 * of no return: {@code prepare*} may fail (ENOMEM, as upstream's metadata stash and vmemmap
 * restore can), the returned {@link Restructure} commits without failing.
 *
 * <p>EXPERIMENTAL: it mirrors the guestmem_hugetlb allocator RFC, which upstream has not merged.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.1")
public interface FolioAllocator {

  /** {@code inode_setup}: reserve what the inode needs. EINVAL for an unsupported size/alignment, ENOMEM when the pool cannot cover it. */
  Inode setupInode(long size, long flags) throws GmemException;

  /** One inode's allocation state. */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.1")
  interface Inode extends AutoCloseable {

    /** Order of the folios {@link #allocFolio} hands out ({@code log2(nr_pages_in_folio)}). */
    int folioOrder();

    /**
     * Memory this allocator supplies for the inode (e.g. a hugetlbfs memfd), or {@code null}
     * when the backend's file (guest_memfd or memfd) holds the bytes.
     */
    default HostMemory.MemoryFile memory() {
      return null;
    }

    /** {@code alloc_folio}: take a folio of {@link #folioOrder()} for the aligned index. ENOMEM when the reservation is exhausted. */
    void allocFolio(long index) throws GmemException;

    /**
     * {@code alloc_folio} with a handle on the new folio. Two first faults of one page may both
     * allocate; core adds one folio to the filemap and {@linkplain Allocation#commit() commits}
     * it, and the loser {@linkplain Allocation#free() frees} its own — never the winner's, which
     * {@link #freeFolio} by index cannot tell apart. The default wraps {@link #allocFolio}; core
     * never lets two allocations of one index race for an allocator that keeps it (it serialises
     * them), so only allocators that override this method allocate concurrently.
     */
    @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
    default Allocation allocate(long index) throws GmemException {
      allocFolio(index);
      int order = folioOrder();
      return new Allocation() {
        @Override
        public void commit() {}

        @Override
        public void free() {
          freeFolio(index, order);
        }
      };
    }

    /**
     * {@code free_folio}: give back the folio of {@code order} at {@code index}. Never fails. Core
     * merges a split huge page before freeing it (punch); only when an inode is torn down while a
     * huge page is split does it free the pieces one by one, and the allocator returns the huge
     * page with the last of them.
     */
    void freeFolio(long index, int order);

    /**
     * The order a folio of {@code order} splits to when only part of it must become smaller. 0
     * (straight to 4 KiB pages) unless the allocator splits in stages, as hugetlb does for
     * 1 GiB: 18 → 9 → 0, so a 1 GiB page with one shared 4 KiB page keeps 511 of its 2 MiB
     * pieces mappable at 2 MiB. Must be below {@code order} for {@code order > 0}.
     */
    @Api(status = Api.Status.EXPERIMENTAL, since = "0.1")
    default int splitOrder(int order) {
      return 0;
    }

    /** Prepare splitting the folio at {@code index} from {@code order} to {@code newOrder}. ENOMEM allowed. */
    default Restructure prepareSplit(long index, int order, int newOrder) throws GmemException {
      return Restructure.NOTHING;
    }

    /** Prepare merging the pages at {@code index} back into one folio of {@code order}. ENOMEM allowed. */
    default Restructure prepareMerge(long index, int order) throws GmemException {
      return Restructure.NOTHING;
    }

    /**
     * Approximate heap bytes this allocator spends tracking the inode's folios beyond core's
     * filemap (e.g. which huge pages are split), for diagnostics. 0 when it keeps nothing per folio.
     */
    @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
    default long trackingBytes() {
      return 0;
    }

    /** {@code inode_teardown}: release the reservation and any memory. */
    @Override
    void close();
  }

  /** A folio just allocated and not yet in the filemap; exactly one of the two methods is called, once. Neither may fail. */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  interface Allocation {
    /** The folio is in the filemap now: from here on it is freed by index ({@link Inode#freeFolio}). */
    void commit();

    /** The folio lost the race for its index (or the fault failed): give back this folio. */
    void free();
  }

  /** A prepared split or merge. {@link #commit()} cannot fail; {@link #abort()} undoes the preparation. */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.1")
  interface Restructure extends Prepared {
    Restructure NOTHING = NoPreparation.INSTANCE;
  }
}
