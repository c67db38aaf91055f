package dev.gmem.directmap;

import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.Prot;
import dev.gmem.api.spi.HostMemory;
import java.util.BitSet;

/**
 * gmem's direct map of one NO_DIRECT_MAP inode — its whole-file view of the memory, the analogue
 * of the kernel's linear map — and the inode's secret-memory accounting. Like the kernel's direct
 * map it maps memory, not file offsets: a page is reachable through it exactly while the secret
 * memory holds it and it is not in the filemap. A folio is removed when it is added and restored
 * when it leaves, as v12's {@code folio_zap_direct_map} / {@code folio_restore_direct_map}.
 *
 * <p>The view starts {@code PROT_NONE}: an index that never had a page has nothing to map (and a
 * load through a readable view would make the kernel allocate secret memory behind gmem's back).
 * So removing a folio on its first add costs no system call — its page is born outside this view,
 * as a secretmem page leaves the kernel's direct map in its own first fault — and only a page
 * that was restored (punched, zeroed, still held) needs an {@code mprotect} to leave again; a run
 * of folios is removed with one {@code mprotect} per stretch of such pages.
 *
 * <p>Nothing ever loads through this view from Java (a removed page would raise SIGSEGV); its
 * address is only used by syscalls that fail with EFAULT instead, in tests.
 */
final class LinearMap implements AutoCloseable {
  final long ino;
  final long nrPages;
  private final HostMemory.Mapping view;
  /** Pages in the filemap: removed from this view. */
  private final BitSet removed = new BitSet();
  /** Pages the secret memory holds (it never frees one before the inode goes). */
  private final BitSet resident = new BitSet();
  /** Pages mapped readable in the view now: resident and not in the filemap. */
  private final BitSet reachable = new BitSet();
  /** {@code mprotect} calls made, for the stats. */
  private long protects;

  LinearMap(long ino, long size, HostMemory.MemoryFile memory) {
    this.ino = ino;
    this.nrPages = size >>> Folio.PAGE_SHIFT;
    this.view = memory.map(0, size, Prot.NONE, 0);
  }

  /**
   * Removes pages {@code [index, index + n)} (folios entering the filemap): one {@code mprotect}
   * per stretch of them that is reachable now, none for pages never mapped. False when the kernel
   * refused one (those pages stay reachable and are not marked removed).
   */
  synchronized boolean zap(long index, long n) {
    int from = (int) index;
    int end = (int) (index + n);
    resident.set(from, end);
    int firstReachable = reachable.nextSetBit(from);
    if (firstReachable < 0 || firstReachable >= end) { // pages never mapped here: nothing to unmap
      removed.set(from, end);
      return true;
    }
    boolean ok = true;
    for (int s = firstReachable; s >= 0 && s < end; s = reachable.nextSetBit(s)) {
      int e = Math.min(reachable.nextClearBit(s), end);
      try {
        protects++;
        view.protect((long) s << Folio.PAGE_SHIFT, (long) (e - s) << Folio.PAGE_SHIFT, Prot.NONE);
        reachable.clear(s, e);
      } catch (GmemException ex) {
        ok = false;
      }
      s = e;
    }
    // What is still reachable (a refused mprotect) is not removed.
    BitSet now = new BitSet();
    now.set(from, end);
    now.andNot(reachable);
    removed.or(now);
    return ok;
  }

  /** Gives {@code [index, index + n)} back; expected not to fail (v12 WARNs if it does). */
  synchronized boolean restore(long index, long n) {
    try {
      protects++;
      view.protect(index << Folio.PAGE_SHIFT, n << Folio.PAGE_SHIFT, Prot.READ_WRITE);
    } catch (GmemException e) {
      return false;
    }
    removed.clear((int) index, (int) (index + n));
    reachable.set((int) index, (int) (index + n));
    return true;
  }

  synchronized boolean isRemoved(long index) {
    return removed.get((int) index);
  }

  /** Whether page {@code index} is mapped readable in the view now. */
  synchronized boolean isReachable(long index) {
    return reachable.get((int) index);
  }

  synchronized long protects() {
    return protects;
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
