package dev.gmem.core.convert;

import com.kenai.jffi.MemoryIO;
import dev.gmem.api.Errno;
import dev.gmem.api.Fallocate;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.HugePagePool;
import dev.gmem.api.MapFlags;
import dev.gmem.api.Prot;
import dev.gmem.core.host.HostProbe;
import dev.gmem.core.sys.MapCountBudget;
import dev.gmem.core.sys.Sys;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Fresh memory for the pages a to-private takes away from raw host users. A reference the kernel
 * took through a host mapping (vmsplice into a pipe, O_DIRECT, io_uring fixed buffers: GUP) is
 * invisible to user space, so gmem cannot refuse the conversion as upstream does (refcount ≠
 * expected → EAGAIN). Instead every page raw users may have reached ({@link HostExposure}) is
 * detached from the file once it is covered: its bytes are copied aside, the page is punched out
 * (the kernel drops the page cache's reference; an old reference keeps a dead page that nobody
 * writes again), the hole is refilled and the bytes copied back. The guest then writes to memory
 * no earlier reference can see.
 *
 * <p>Cost: two copies, a punch and a refill per exposed page, paid only on to-private of pages a
 * handed-out raw view mapped (see {@code RawView}); pages only reached through gmem's accessors,
 * which copy through gmem's windows, are never detached.
 *
 * <p>Everything fallible happens in {@link #prepare}: the copy buffer is mapped and populated,
 * and on hugetlb memory the pool must have a free page per huge page detached (a detached page
 * still referenced is not given back until its last reference goes, and its refill needs one).
 * {@link #apply} refills with MADV_POPULATE_WRITE, which on 4 KiB memory only fails when the
 * system is out of memory; it then copies back with plain stores, whose faults the kernel
 * resolves (or OOM-kills) rather than fail.
 */
final class Detach {
  /** Bytes detached per step at most (unless a huge page is larger): bounds the copy buffer. */
  private static final long CHUNK = 2L << 20;
  private static final MemoryIO IO = MemoryIO.getInstance();
  private static final Logger LOG = LoggerFactory.getLogger(Detach.class);
  static final Detach NONE = new Detach(null, 0, List.of(), false, 0, 0);

  private final ConvertibleInode inode;
  /** Where file byte 0 would be in the window the detach copies through. */
  private final long view;
  private final List<long[]> runs;
  private final boolean keepContents;
  private final long buffer;
  private final long bufferLength;

  private Detach(ConvertibleInode inode, long view, List<long[]> runs, boolean keepContents, long buffer, long bufferLength) {
    this.inode = inode;
    this.view = view;
    this.runs = runs;
    this.keepContents = keepContents;
    this.buffer = buffer;
    this.bufferLength = bufferLength;
  }

  /**
   * Plans detaching the exposed pages of {@code [start, end)}, widened to the memory's page size.
   * {@code keepContents} is false when the arch does not keep contents across the conversion:
   * then nothing is copied. {@code view} maps a window over the range (which the detach copies
   * through) and answers where file byte 0 would be in it; asked only when there is something to
   * detach, while failing is still allowed.
   */
  static Detach prepare(ConvertibleInode inode, long start, long end, boolean keepContents, java.util.function.LongSupplier view) {
    if (inode.secretMemory()) {
      // GUP fails on memfd_secret memory (vmsplice, process_vm_readv: EFAULT, tested in
      // gmem-direct-map), so no kernel reference can have been taken through a raw view: nothing to detach.
      return NONE;
    }
    long block = 1L << inode.hostBlockOrder();
    List<long[]> runs = new ArrayList<>();
    for (long[] r : inode.exposure().within(start, end)) {
      long a = r[0] & -block;
      long b = Math.min(inode.nrPages(), (r[1] + block - 1) & -block);
      long[] last = runs.isEmpty() ? null : runs.get(runs.size() - 1);
      if (last != null && a <= last[1]) {
        last[1] = Math.max(last[1], b);
      } else {
        runs.add(new long[] {a, b});
      }
    }
    if (runs.isEmpty()) {
      return NONE;
    }
    long base = view.getAsLong();
    long pages = 0;
    for (long[] r : runs) {
      pages += r[1] - r[0];
    }
    if (block > 1) {
      long[] resident = new long[1];
      for (long[] r : runs) {
        forEachResident(inode.sys(), base, r[0], r[1], block, (s, e) -> resident[0] += e - s);
      }
      checkPool(block << Folio.PAGE_SHIFT, resident[0] / block, runs.get(0)[0]);
    }
    if (!keepContents) {
      return new Detach(inode, base, runs, false, 0, 0);
    }
    long length = Math.min(pages << Folio.PAGE_SHIFT, Math.max(CHUNK, block << Folio.PAGE_SHIFT));
    Sys sys = inode.sys();
    MapCountBudget.process().reserveTransient(1);
    long buffer = 0;
    try {
      buffer = sys.mmap(0, length, Prot.READ_WRITE, MapFlags.PRIVATE | Sys.MAP_ANONYMOUS, -1, 0);
      sys.madvise(buffer, length, Sys.MADV_POPULATE_WRITE);
      return new Detach(inode, base, runs, true, buffer, length);
    } catch (GmemException e) {
      if (buffer != 0) {
        sys.munmap(buffer, length);
      }
      MapCountBudget.process().release(1);
      throw GmemException.atOffset(e.errno(), runs.get(0)[0] << Folio.PAGE_SHIFT, "no memory to detach exposed pages: " + e.getMessage());
    }
  }

  /** Receives a run of pages. */
  @FunctionalInterface
  private interface Run {
    void visit(long start, long end);
  }

  /**
   * The runs of {@code [start, end)} whose pages the file holds (mincore through gmem's
   * window), in whole blocks: gmem's filemap is not enough, since a raw access may have made the
   * kernel instantiate a page gmem has not handed out yet. A chunk at a time, so the residency
   * vector stays small.
   */
  private static void forEachResident(Sys sys, long view, long start, long end, long block, Run visitor) {
    long chunk = Math.max(CHUNK >>> Folio.PAGE_SHIFT, block);
    long runStart = -1;
    long runEnd = -1;
    for (long c = start; c < end; c += chunk) {
      long n = Math.min(chunk, end - c);
      byte[] vec = sys.mincore(view + (c << Folio.PAGE_SHIFT), n << Folio.PAGE_SHIFT);
      for (long i = 0; i < n; i += block) {
        if ((vec[(int) i] & 1) == 0) {
          continue;
        }
        long p = c + i;
        if (p == runEnd) {
          runEnd = p + block;
        } else {
          if (runStart >= 0) {
            visitor.visit(runStart, runEnd);
          }
          runStart = p;
          runEnd = p + block;
        }
      }
    }
    if (runStart >= 0) {
      visitor.visit(runStart, runEnd);
    }
  }

  /** A detached huge page still referenced keeps its pool page: its refill needs another. */
  private static void checkPool(long pageSize, long pages, long firstPage) {
    HugePagePool pool = HostProbe.hugePagePools(HostProbe.SYSFS_HUGEPAGES).stream()
        .filter(p -> p.pageSize() == pageSize).findFirst().orElse(null);
    if (pool == null || pool.available() < pages) {
      throw GmemException.atOffset(Errno.ENOMEM, firstPage << Folio.PAGE_SHIFT, "detaching " + pages + " huge page(s) of "
          + (pageSize >> 10) + " KiB that raw host users reached needs as many free in the pool (" + (pool == null ? 0 : pool.available())
          + " available): a kernel reference may keep the old one");
    }
  }

  /** Whether any page may have to be detached. */
  boolean any() {
    return !runs.isEmpty();
  }

  /**
   * Detaches, after the point of no return, with the pages covered in every host mapping and the
   * invalidate lock held exclusive: no raw user can reach them or make the kernel instantiate new
   * ones, so the pages found resident now are all a kernel reference taken earlier can hold.
   */
  void apply() {
    if (runs.isEmpty()) {
      return;
    }
    long block = 1L << inode.hostBlockOrder();
    for (long[] r : runs) {
      forEachResident(inode.sys(), view, r[0], r[1], block, (s, e) -> detach(view, s << Folio.PAGE_SHIFT, e << Folio.PAGE_SHIFT));
      inode.exposure().remove(r[0], r[1]);
    }
  }

  /** Copies {@code [from, to)} (bytes, resident) aside, punches it and refills it, a buffer at a time. */
  private void detach(long view, long from, long to) {
    Sys sys = inode.sys();
    long step = keepContents ? bufferLength : CHUNK;
    for (long p = from; p < to; p += step) {
      long len = Math.min(step, to - p);
      if (keepContents) {
        IO.copyMemory(view + p, buffer, len);
      }
      sys.fallocate(inode.memory().get(), Fallocate.KEEP_SIZE | Fallocate.PUNCH_HOLE, p, len);
      if (keepContents && refillByWrite(p, len)) {
        continue;
      }
      try {
        sys.madvise(view + p, len, Sys.MADV_POPULATE_WRITE);
      } catch (GmemException outOfMemory) {
        if (inode.hostBlockOrder() > 0) {
          // A store would SIGBUS: another process took the pool page checked for in prepare.
          LOG.warn("inode {}: no huge page to refill detached page {} ({}); its contents are lost", inode, p >>> Folio.PAGE_SHIFT,
              outOfMemory.getMessage());
          continue;
        }
        // 4 KiB memory: the stores below fault the pages in, as any access would.
      }
      if (keepContents) {
        IO.copyMemory(buffer, view + p, len);
      }
    }
  }

  /**
   * Refills {@code [offset, +len)} from the copy buffer with one pwrite, where the memory takes
   * writes (shmem does, without zeroing the new pages first: about half the cost of populating
   * and copying; guest_memfd and hugetlbfs do not). False where it did not fill it all.
   */
  private boolean refillByWrite(long offset, long len) {
    try {
      return inode.sys().pwrite(inode.memory().get(), buffer, len, offset) == len;
    } catch (GmemException unsupported) {
      return false;
    }
  }

  /** Unmaps the copy buffer. */
  void close() {
    if (bufferLength != 0) {
      inode.sys().munmap(buffer, bufferLength);
      MapCountBudget.process().release(1);
    }
  }
}
