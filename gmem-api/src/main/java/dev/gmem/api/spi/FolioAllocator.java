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
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public interface FolioAllocator {

  /** {@code inode_setup}: reserve what the inode needs. EINVAL for an unsupported size/alignment, ENOMEM when the pool cannot cover it. */
  Inode setupInode(long size, long flags) throws GmemException;

  /** One inode's allocation state. */
  @Api(status = Api.Status.STABLE, since = "0.1")
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

    /** {@code free_folio}: give back the folio of {@code order} at {@code index}. Never fails. */
    void freeFolio(long index, int order);

    /** Prepare splitting the folio at {@code index} from {@code order} to {@code newOrder}. ENOMEM allowed. */
    default Restructure prepareSplit(long index, int order, int newOrder) throws GmemException {
      return Restructure.NOTHING;
    }

    /** Prepare merging the pages at {@code index} back into one folio of {@code order}. ENOMEM allowed. */
    default Restructure prepareMerge(long index, int order) throws GmemException {
      return Restructure.NOTHING;
    }

    /** {@code inode_teardown}: release the reservation and any memory. */
    @Override
    void close();
  }

  /** A prepared split or merge. {@link #commit()} cannot fail; {@link #abort()} undoes the preparation. */
  @Api(status = Api.Status.STABLE, since = "0.1")
  interface Restructure {
    Restructure NOTHING = new Restructure() {
      @Override
      public void commit() {}

      @Override
      public void abort() {}
    };

    void commit();

    void abort();
  }
}
