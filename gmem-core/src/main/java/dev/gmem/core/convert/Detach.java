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
 * On huge pages residency is not asked of mincore, which there sees only the window's own page
 * table: every exposed huge page is punched and refilled, those gmem does not know of read aside
 * with pread (no page instantiated for a hole) and copied back only if they held data.
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
    Sys sys = inode.sys();
    long length = keepContents ? Math.min(pages << Folio.PAGE_SHIFT, Math.max(CHUNK, block << Folio.PAGE_SHIFT)) : 0;
    long buffer = 0;
    if (keepContents) {
      MapCountBudget.process().reserveTransient(1);
      try {
        buffer = sys.mmap(0, length, Prot.READ_WRITE, MapFlags.PRIVATE | Sys.MAP_ANONYMOUS, -1, 0);
        sys.madvise(buffer, length, Sys.MADV_POPULATE_WRITE);
      } catch (GmemException e) {
        if (buffer != 0) {
          sys.munmap(buffer, length);
        }
        MapCountBudget.process().release(1);
        throw GmemException.atOffset(e.errno(), runs.get(0)[0] << Folio.PAGE_SHIFT, "no memory to detach exposed pages: " + e.getMessage());
      }
    }
    Detach d = new Detach(inode, base, runs, keepContents, buffer, length);
    if (block > 1) {
      try {
        long refills = 0;
        for (long[] r : runs) {
          for (long b = r[0]; b < r[1]; b += block) {
            refills += d.known(b, block) || (keepContents && d.readAside(b, block)) ? 1 : 0;
          }
        }
        checkPool(block << Folio.PAGE_SHIFT, refills, runs.get(0)[0]);
      } catch (RuntimeException e) {
        d.close();
        throw e;
      }
    }
    return d;
  }

  /** Receives a run of pages. */
  @FunctionalInterface
  private interface Run {
    void visit(long start, long end);
  }

  /**
   * The runs of {@code [start, end)} whose pages the file holds (mincore through gmem's
   * window, which on 4 KiB memory looks the page cache up), in whole blocks: gmem's filemap is
   * not enough, since a raw access may have made the kernel instantiate a page gmem has not
   * handed out yet. A chunk at a time, so the residency vector stays small. Not for huge pages
   * (see {@link #known}).
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

  /**
   * Whether gmem knows the file holds a page in huge block {@code [b, b + block)}: gmem handed one
   * out there, or its window maps one. Not the converse: mincore on a hugetlbfs mapping reports
   * the mapping's own page table, not the page cache (mincore_hugetlb), so a page a raw user
   * instantiated, or one refaulted elsewhere after a punch zapped the window, reads as absent.
   */
  private boolean known(long b, long block) {
    long[] present = new long[1];
    inode.filemap().forEachPresentRun(b, Math.min(b + block, inode.nrPages()), (s, e) -> present[0] += e - s);
    if (present[0] > 0) {
      return true;
    }
    return (inode.sys().mincore(view + (b << Folio.PAGE_SHIFT), Folio.PAGE_SIZE)[0] & 1) != 0;
  }

  /**
   * Copies huge block {@code [b, b + block)} into the buffer with pread, which reads a hole as
   * zeros without instantiating a page (a fault through the window would take one from the pool);
   * true if it holds anything but zeros, i.e. a page a raw user wrote that gmem never handed out.
   */
  private boolean readAside(long b, long block) {
    long len = block << Folio.PAGE_SHIFT;
    long off = b << Folio.PAGE_SHIFT;
    long done = 0;
    while (done < len) {
      long n = inode.sys().pread(inode.memory().get(), buffer + done, len - done, off + done);
      if (n <= 0) {
        break;
      }
      done += n;
    }
    if (done < len) {
      IO.setMemory(buffer + done, len - done, (byte) 0);
    }
    for (long i = 0; i < done; i += 8) {
      if (IO.getLong(buffer + i) != 0) {
        return true;
      }
    }
    return false;
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
      if (block > 1) {
        // The whole huge page is copied and replaced, the pages beside the converted ones too:
        // gmem's lock-free accessors must not write to them meanwhile (a write between the copy
        // aside and the punch would be lost).
        inode.invalidateBegin(r[0], r[1]);
        for (long b = r[0]; b < r[1]; b += block) {
          if (known(b, block)) {
            detach(view, b << Folio.PAGE_SHIFT, (b + block) << Folio.PAGE_SHIFT);
          } else {
            detachUnknown(b, block);
          }
        }
      } else {
        forEachResident(inode.sys(), view, r[0], r[1], block, (s, e) -> detach(view, s << Folio.PAGE_SHIFT, e << Folio.PAGE_SHIFT));
      }
      inode.exposure().remove(r[0], r[1]);
    }
  }

  /**
   * Detaches a huge block gmem does not know to be resident: it may hold a page a raw user
   * instantiated (and a kernel reference to it), so it is punched all the same; its contents are
   * read aside without instantiating a hole. It is refilled even where it held nothing: the punch
   * dropped the block's reservation (hugetlb_unreserve_pages), and a page in the file keeps the
   * pool page a reservation would have, so gmem's later fault there cannot find the pool empty.
   */
  private void detachUnknown(long b, long block) {
    long from = b << Folio.PAGE_SHIFT;
    long len = block << Folio.PAGE_SHIFT;
    boolean contents = keepContents && readAside(b, block);
    inode.sys().fallocate(inode.memory().get(), Fallocate.KEEP_SIZE | Fallocate.PUNCH_HOLE, from, len);
    try {
      inode.sys().madvise(view + from, len, Sys.MADV_POPULATE_WRITE);
    } catch (GmemException outOfMemory) {
      if (contents) {
        LOG.warn("inode {}: no huge page to refill detached page {} ({}); its contents are lost", inode, b, outOfMemory.getMessage());
      }
      return;
    }
    if (contents) {
      IO.copyMemory(buffer, view + from, len);
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
