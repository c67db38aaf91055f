package dev.gmem.core.inode;

import dev.gmem.api.Errno;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.Shareability;
import dev.gmem.api.spi.FaultInterceptor;
import dev.gmem.api.spi.FolioAllocator;
import dev.gmem.api.spi.TemporaryMapping;
import dev.gmem.core.filemap.Filemap;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.concurrent.locks.Lock;

/**
 * {@code write()} population of one inode (upstream's {@code GUEST_MEMFD_FLAG_WRITE}, §3.6): whole
 * pages, in order, each checked as a host write fault and required SHARED, a present page of a
 * NO_DIRECT_MAP inode refused with EEXIST (it is sealed), an absent one filled through a
 * temporary mapping and only then added to the filemap — so it enters the filemap, and leaves
 * gmem's direct map, with its content.
 *
 * <p>The work goes in chunks of pages that share no allocation stripe (at most
 * {@link FaultPath#ALLOCATION_STRIPES}, aligned to it): the chunk's stripes are taken in
 * ascending order — first faults take one stripe at a time and writers one chunk at a time, so
 * none can deadlock — then the chunk is copied with one bulk copy and its absent pages are added;
 * the listeners hear of each run of added pages once ({@code foliosAdded}), under the invalidate
 * lock, before anything can prepare or remove them.
 */
final class WritePopulation {
  private final FaultPath faults;
  private final GuestMemInodeImpl inode;
  private final long ino;
  private final boolean sealed;
  private final Filemap filemap;
  private final FolioAllocator.Inode allocator;
  private final List<FaultInterceptor> interceptors;

  WritePopulation(FaultPath faults, GuestMemInodeImpl inode, List<FaultInterceptor> accessInterceptors) {
    this.faults = faults;
    this.inode = inode;
    this.ino = inode.ino();
    this.sealed = (inode.flags() & GmemFlags.NO_DIRECT_MAP) != 0;
    this.filemap = inode.filemap();
    this.allocator = inode.allocator();
    this.interceptors = accessInterceptors;
  }

  /** See {@link FaultPath#write}. */
  long write(long first, ByteBuffer src) {
    if (inode.folioOrder() != 0) {
      throw GmemException.einval("write() population of inode " + ino + ": only 4 KiB folios are supported");
    }
    long n = src.remaining() >>> Folio.PAGE_SHIFT;
    Lock lock = inode.invalidateLock().readLock();
    lock.lock();
    Runs runs = new Runs();
    long done = 0;
    // One temporary mapping for the call: the pages are filled through it before they are added.
    try (TemporaryMapping target = inode.temporaryMappings().open(inode, first, n)) {
      while (done < n) {
        long start = first + done;
        long end = Math.min(first + n, (start | (FaultPath.ALLOCATION_STRIPES - 1)) + 1);
        long written = chunk(start, end, src, target, done, done == 0, runs);
        done += written;
        if (first + done < end) {
          break; // a later page failed: the call ends with what it wrote
        }
      }
    } finally {
      try {
        runs.flush();
      } finally {
        lock.unlock();
      }
    }
    src.position(src.position() + (int) (done << Folio.PAGE_SHIFT));
    return done << Folio.PAGE_SHIFT;
  }

  /**
   * Pages {@code [start, end)}, which share no stripe; returns how many were written, from
   * {@code start} on. A failure at the call's first page throws; any other ends the chunk there.
   */
  private long chunk(long start, long end, ByteBuffer src, TemporaryMapping target, long srcPage, boolean callsFirst, Runs runs) {
    // The host-fault checks, page by page: a failing page ends the chunk (or the call, if first).
    long ok = start;
    try {
      for (; ok < end; ok++) {
        check(ok);
      }
    } catch (GmemException e) {
      if (callsFirst && ok == start) {
        throw e;
      }
    }
    if (ok == start) {
      return 0;
    }
    Lock[] stripes = new Lock[(int) (ok - start)];
    FolioAllocator.Allocation[] folios = new FolioAllocator.Allocation[stripes.length];
    int locked = 0;
    int allocated = 0;
    try {
      for (; locked < stripes.length; locked++) {
        stripes[locked] = faults.allocationStripe(start + locked);
        stripes[locked].lock();
      }
      long last = start;
      try {
        for (; last < ok; last++) {
          boolean present = filemap.isPresent(last);
          if (present && sealed) {
            throw new GmemException(Errno.EEXIST, "write() to page " + last + " of inode " + ino + ": it is present and sealed (removed from the direct map)");
          }
          folios[(int) (last - start)] = present ? null : allocator.allocate(last);
          allocated++;
        }
      } catch (GmemException e) {
        if (callsFirst && last == start) {
          throw e;
        }
      }
      if (last == start) {
        return 0;
      }
      long length = (last - start) << Folio.PAGE_SHIFT;
      int at = src.position() + (int) (srcPage << Folio.PAGE_SHIFT);
      target.write(srcPage << Folio.PAGE_SHIFT, src.duplicate().limit(at + (int) length).position(at));
      for (long i = start; i < last; i++) {
        FolioAllocator.Allocation folio = folios[(int) (i - start)];
        if (folio != null) {
          filemap.add(i, 0); // cannot lose: first faults of the page take its stripe, which we hold
          folio.commit();
          folios[(int) (i - start)] = null;
          runs.added(i);
        }
      }
      return last - start;
    } finally {
      for (int i = 0; i < allocated; i++) {
        if (folios[i] != null) {
          folios[i].free(); // not added: the copy failed
        }
      }
      for (int i = locked - 1; i >= 0; i--) {
        stripes[i].unlock();
      }
    }
  }

  /** A host write fault's checks, and SHARED only. */
  private void check(long index) {
    faults.checkHostFault(index, index + 1);
    Shareability s = inode.shareabilityStore().get(index);
    if (s != Shareability.SHARED) {
      throw new GmemException(Errno.EACCES, "write() to " + s + " page " + index + " of inode " + ino + ": only shared memory may be written");
    }
    for (FaultInterceptor fi : interceptors) {
      fi.hostFault(faults.page(index), true);
    }
  }

  /** The run of added folios the listeners have not heard of yet. */
  private final class Runs {
    private long start;
    private long length;

    void added(long index) {
      if (length > 0 && start + length == index) {
        length++;
        return;
      }
      flush();
      start = index;
      length = 1;
    }

    void flush() {
      faults.addedAll(start, 0, length);
      length = 0;
    }
  }
}
