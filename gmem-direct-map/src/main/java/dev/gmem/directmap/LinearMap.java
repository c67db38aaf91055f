package dev.gmem.directmap;

import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.Prot;
import dev.gmem.api.spi.HostMemory;
import java.util.BitSet;

/**
 * gmem's direct map of one NO_DIRECT_MAP inode — its whole-file view of the memory, the analogue
 * of the kernel's linear map — and the inode's secret-memory accounting. A page is reachable
 * through it only while it is not in the filemap: a folio is zapped ({@code PROT_NONE}) when it
 * is added and restored when it leaves, as v12's {@code folio_zap_direct_map} /
 * {@code folio_restore_direct_map}. Nothing ever loads through this view from Java (a zapped page
 * would raise SIGSEGV); its address is only used by syscalls that fail with EFAULT instead, in
 * tests.
 */
final class LinearMap implements AutoCloseable {
  final long ino;
  final long nrPages;
  private final HostMemory.Mapping view;
  /** Pages in the filemap: removed from this view. */
  private final BitSet removed = new BitSet();
  /** Pages the secret memory holds (it never frees one before the inode goes). */
  private final BitSet resident = new BitSet();

  LinearMap(long ino, long size, HostMemory.MemoryFile memory) {
    this.ino = ino;
    this.nrPages = size >>> Folio.PAGE_SHIFT;
    this.view = memory.map(0, size, Prot.READ_WRITE, 0);
  }

  /** Removes {@code [index, index + 2^order)}; false when the kernel refused (the page stays reachable). */
  synchronized boolean zap(long index, int order) {
    long n = 1L << order;
    resident.set((int) index, (int) (index + n));
    try {
      view.protect(index << Folio.PAGE_SHIFT, n << Folio.PAGE_SHIFT, Prot.NONE);
    } catch (GmemException e) {
      return false;
    }
    removed.set((int) index, (int) (index + n));
    return true;
  }

  /** Gives {@code [index, index + 2^order)} back; expected not to fail (v12 WARNs if it does). */
  synchronized boolean restore(long index, int order) {
    long n = 1L << order;
    try {
      view.protect(index << Folio.PAGE_SHIFT, n << Folio.PAGE_SHIFT, Prot.READ_WRITE);
    } catch (GmemException e) {
      return false;
    }
    removed.clear((int) index, (int) (index + n));
    return true;
  }

  synchronized boolean isRemoved(long index) {
    return removed.get((int) index);
  }

  /** Whether every page of {@code [index, index + 2^order)} is removed (a split or merge keeps them so). */
  synchronized boolean allRemoved(long index, int order) {
    int end = (int) (index + (1L << order));
    return removed.nextClearBit((int) index) >= end;
  }

  synchronized long removedPages() {
    return removed.cardinality();
  }

  synchronized DirectMap.InodeAccounting accounting() {
    long present = removed.cardinality();
    long res = resident.cardinality();
    BitSet held = (BitSet) resident.clone();
    held.andNot(removed);
    return new DirectMap.InodeAccounting(ino, nrPages, present, res, held.cardinality());
  }

  /** The view's address (tests probe it with syscalls, never with loads). */
  long address() {
    return view.address();
  }

  @Override
  public synchronized void close() {
    view.close();
  }
}
