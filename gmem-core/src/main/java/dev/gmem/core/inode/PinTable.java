package dev.gmem.core.inode;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.Pin;
import dev.gmem.api.spi.FaultInterceptor;
import dev.gmem.core.filemap.Filemap;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The long-term references (GUP pins) on an inode's pages: taking one host-faults the pages and
 * raises their folios' reference counts, which conversion and punch then find.
 */
public final class PinTable {
  private final GuestMemInodeImpl inode;
  private final Set<PinImpl> pins = ConcurrentHashMap.newKeySet();

  PinTable(GuestMemInodeImpl inode) {
    this.inode = inode;
  }

  /** Faults {@code [index, index + nrPages)} in as the host and takes a long-term reference on each page. */
  public Pin pin(long index, long nrPages) {
    if (nrPages > Integer.MAX_VALUE) {
      throw GmemException.einval("cannot pin more than 2^31 pages at once");
    }
    FaultPath faults = inode.faults();
    Filemap filemap = inode.filemap();
    inode.acquire(); // a pin is a reference: it keeps the inode, and so its pages, alive
    boolean pinned = false;
    inode.invalidateLock().readLock().lock();
    try {
      for (long i = index; i < index + nrPages; i++) {
        if (!faults.hostMayFault(i)) {
          throw new GmemException(Errno.EFAULT, "cannot pin page " + i + ": the host may not fault it (" + inode.shareabilityStore().get(i) + ")");
        }
      }
      for (FaultInterceptor fi : faults.interceptors()) {
        fi.pin(faults.page(index), nrPages); // GUP on memory a feature removed from the direct map fails here
      }
      long taken = index;
      try {
        for (; taken < index + nrPages; taken++) {
          faults.ensureFolio(taken);
          filemap.get(taken);
        }
      } catch (RuntimeException e) {
        for (long i = index; i < taken; i++) {
          filemap.put(i);
        }
        throw e;
      }
      PinImpl p = new PinImpl(inode, index, nrPages);
      pins.add(p);
      pinned = true;
      return p;
    } finally {
      inode.invalidateLock().readLock().unlock();
      if (!pinned) {
        inode.release();
      }
    }
  }

  /** Closes every pin (runtime shutdown). */
  void closeAll() {
    for (PinImpl p : List.copyOf(pins)) {
      p.close();
    }
  }

  void remove(PinImpl p) {
    pins.remove(p);
  }

  /**
   * A pin's references on {@code [index, index + nrPages)} were dropped (no lock held): features
   * hear of it, and pages parked in NONE that have no reference left complete their move to
   * private.
   */
  void unpinned(long index, long nrPages) {
    FaultPath faults = inode.faults();
    for (FaultInterceptor fi : faults.interceptors()) {
      fi.unpin(faults.page(index), nrPages);
    }
    inode.drainParked(index, index + nrPages);
  }

  /** Pages {@code [start, end)} left the filemap with their references (punched): no pin puts them again. */
  void forget(long start, long end) {
    for (PinImpl p : pins) {
      p.forget(start, end);
    }
  }
}
