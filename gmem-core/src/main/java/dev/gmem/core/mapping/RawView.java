package dev.gmem.core.mapping;

import dev.gmem.api.Folio;
import dev.gmem.api.MapFlags;
import dev.gmem.api.Shareability;
import dev.gmem.api.ShareabilityRange;
import dev.gmem.core.convert.MappingChange;
import dev.gmem.core.inode.GuestMemInodeImpl;
import dev.gmem.core.shareability.ShareabilityStore;
import dev.gmem.core.sys.MapCountBudget;
import dev.gmem.core.sys.Mapping;
import dev.gmem.core.sys.Sys;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.locks.Lock;

/**
 * The raw memory of a host mapping: what {@code address()} and {@code buffer()} hand out. Pages
 * the host may not fault are covered by a mapping of an empty memfd ({@link InaccessibleMemory}),
 * so a raw access to them raises SIGBUS as the kernel's would.
 *
 * <p>Covers are kept only once the raw view has been handed out: until then the region is SIGBUS
 * memory throughout and nobody can touch the file through it but gmem's accessors, which copy
 * through gmem's window after checking shareability, so conversions change nothing here and a
 * mapping used through its accessors alone stays one VMA however many private islands its file
 * has (and is no mapping of the file at all). The first hand-out brings the region up to date
 * (under the invalidate lock, so no conversion runs meanwhile) and records the file pages now
 * reachable as {@link dev.gmem.core.convert.HostExposure exposed}.
 *
 * <p>Every run of file or SIGBUS memory is one VMA: covers map the empty memfd at the file page's
 * own offset, so adjacent covers merge like adjacent file pieces do; hugetlbfs VMAs never merge,
 * so a remap there replaces the whole file run it joins. The VMAs are charged to the process's
 * {@link MapCountBudget} before anything changes.
 *
 * <h2>Huge-page memory</h2>
 * A hugetlbfs mapping can be replaced only in whole huge pages (its VMAs split at huge-page
 * boundaries only), so where the memory's block is larger than a page the covering works per
 * block: a block is mapped only while every page of it is host-faultable; a block holding any
 * private page is covered whole. The part beyond EOF is covered too: hugetlbfs would reserve pool
 * pages for it and instantiate pages there on a fault.
 */
final class RawView implements AutoCloseable {
  /** Pages healed per fault at most: one 2 MiB block, so a fault's work is bounded. */
  private static final long HEAL_BLOCK = 512;

  private final GuestMemInodeImpl inode;
  private final InaccessibleMemory inaccessible;
  private final Sys sys;
  private final MapCountBudget budget = MapCountBudget.process();
  private final long offset;
  private final long firstPage;
  private final int prot;
  /**
   * MAP_SHARED, and MAP_LOCKED where the mapping asked for it: every piece, file or SIGBUS memory,
   * has the flags of the region, so that neighbours of one kind merge into one VMA. (A locked
   * spare populates what it maps; its pages are about to be shared.)
   */
  private final int flags;
  private final long blockPages;
  private final Mapping region;
  /** Per page of the region: SHARED = the file is mapped there, PRIVATE = the SIGBUS memory is. */
  private final ShareabilityStore mapped;
  private volatile boolean handedOut;
  /** VMAs of the region, as charged to the budget (guarded by this). */
  private long vmas;

  private RawView(GuestMemInodeImpl inode, InaccessibleMemory inaccessible, long offset, int prot, int flags,
      Mapping region, Shareability initial) {
    this.inode = inode;
    this.inaccessible = inaccessible;
    this.sys = inode.sys();
    this.offset = offset;
    this.firstPage = offset >>> Folio.PAGE_SHIFT;
    this.prot = prot;
    this.flags = flags;
    this.blockPages = 1L << inode.hostBlockOrder();
    this.region = region;
    this.mapped = new ShareabilityStore((region.length() + Folio.PAGE_SIZE - 1) >>> Folio.PAGE_SHIFT, initial);
    this.vmas = 1;
  }

  /**
   * Reserves {@code [offset, offset + length)} of the inode's memory at {@code where} as SIGBUS
   * memory; the file goes over what the host may fault at hand-out. Until then the file has no
   * mapping here, so the kernel's work for the file — a punch's unmap of every mapping over its
   * range, even one without page tables (about 0.5 µs per 4 KiB punch on the 2026-12-04 host) —
   * covers gmem's window alone, as it covers one mapping for a VMM that maps the file once. Under
   * MAP_LOCKED, which faults in what it maps, and on huge-page memory the file could not go
   * anywhere sooner anyway.
   */
  static RawView map(GuestMemInodeImpl inode, InaccessibleMemory inaccessible, Placement where, long offset, long length, int prot,
      int mapFlags) {
    MapCountBudget budget = MapCountBudget.process();
    budget.reserve(1);
    try {
      Sys sys = inode.sys();
      boolean huge = inode.hostBlockOrder() > 0;
      // hugetlb pages are never swapped: MAP_LOCKED only populates there.
      int flags = MapFlags.SHARED | (huge ? 0 : mapFlags & MapFlags.LOCKED);
      long regionLength = huge ? blockAligned(inode, offset, length) : length;
      Mapping m = new Mapping(sys, sys.mmap(where.address(), regionLength, prot, flags | MapFlags.FIXED, inaccessible.fd(), offset), regionLength);
      return new RawView(inode, inaccessible, offset, prot, flags, m, Shareability.PRIVATE);
    } catch (RuntimeException e) {
      budget.release(1);
      throw e;
    }
  }

  /** A huge-page region's length: whole blocks (the placement is aligned to them); its offset must be aligned too. */
  private static long blockAligned(GuestMemInodeImpl inode, long offset, long length) {
    long block = Folio.PAGE_SIZE << inode.hostBlockOrder();
    if ((offset & (block - 1)) != 0) {
      // hugetlbfs_file_mmap's rule: the offset must be huge-page aligned.
      throw dev.gmem.api.GmemException.einval(
          "mmap offset 0x" + Long.toHexString(offset) + " not aligned to the huge page size 0x" + Long.toHexString(block));
    }
    return (length + block - 1) & -block;
  }

  long address() {
    return region.address();
  }

  boolean isOpen() {
    return region.isOpen();
  }

  boolean handedOut() {
    return handedOut;
  }

  /** The last page of the region, exclusive, in file pages. */
  private long regionEnd() {
    return firstPage + mapped.nrPages();
  }

  /**
   * Hands the raw view out: the first time, covers what the host may not fault and maps what it
   * may, and records the mapped file pages as exposed. Takes the invalidate lock shared (it may
   * be held already), so it never overlaps a conversion.
   */
  void handOut() {
    if (handedOut) {
      return;
    }
    Lock l = inode.invalidateLock().readLock();
    l.lock();
    try {
      synchronized (this) {
        if (handedOut || !region.isOpen()) {
          return;
        }
        long end = Math.min(inode.nrPages(), regionEnd());
        List<Op> ops = new ArrayList<>();
        if (blockPages > 1) {
          plan(firstPage, regionEnd(), true, firstPage, firstPage, ops);
        } else if (firstPage < end) {
          for (ShareabilityRange r : inode.shareabilityRanges(firstPage, end)) {
            for (long[] run : inode.faults().hostRuns(r.start(), r.end(), r.shareability())) {
              plan(run[0], run[1], run[2] != 0, run[0], run[1], ops);
            }
          }
        }
        prepare(ops).apply();
        handedOut = true;
        for (ShareabilityRange r : mapped.ranges(0, mapped.nrPages())) {
          if (r.shareability() == Shareability.SHARED) {
            inode.exposure().add(firstPage + r.start(), Math.min(inode.nrPages(), firstPage + r.end()));
          }
        }
      }
    } finally {
      l.unlock();
    }
  }

  /** See {@link dev.gmem.core.convert.InodeMapping#prepareAccess}. */
  synchronized MappingChange prepareAccess(long startPage, long endPage, boolean accessible) {
    if (!handedOut || !region.isOpen()) {
      return MappingChange.NONE;
    }
    List<Op> ops = new ArrayList<>();
    if (accessible && blockPages == 1) {
      // Shared again, but only where the arch lets the host fault (asked per page, as a fault would).
      long first = Math.max(firstPage, startPage);
      long end = Math.min(Math.min(inode.nrPages(), regionEnd()), endPage);
      for (long[] run : first < end ? inode.faults().hostRuns(first, end, Shareability.SHARED) : List.<long[]>of()) {
        plan(run[0], run[1], run[2] != 0, run[0], run[1], ops);
      }
    } else {
      plan(startPage, endPage, accessible, startPage, endPage, ops);
    }
    return ops.isEmpty() ? MappingChange.NONE : prepare(ops);
  }

  /** A run of the region to map the file at (accessible) or cover. */
  private record Op(long start, long end, boolean accessible) {}

  /**
   * Plans {@code [startPage, endPage)} becoming (in)accessible, widened to blocks. Where blocks
   * are larger than a page, a block is mapped only if every page of it will be faultable: pages in
   * {@code [changeStart, changeEnd)} are the ones changing; the others keep their shareability.
   */
  private void plan(long startPage, long endPage, boolean accessible, long changeStart, long changeEnd, List<Op> ops) {
    long first = Math.max(firstPage, startPage & -blockPages);
    long end = Math.min(regionEnd(), (endPage + blockPages - 1) & -blockPages);
    if (first >= end) {
      return;
    }
    if (!accessible || blockPages == 1) {
      add(ops, first, end, accessible);
      return;
    }
    for (long b = first; b < end; b += blockPages) {
      add(ops, b, b + blockPages, blockFaultableAfter(b, changeStart, changeEnd));
    }
  }

  /** Adds a run unless the region is in that state already, joining it to the previous run where they meet. */
  private void add(List<Op> ops, long start, long end, boolean accessible) {
    if (mapped.isUniform(start - firstPage, end - firstPage, accessible ? Shareability.SHARED : Shareability.PRIVATE)) {
      return;
    }
    Op last = ops.isEmpty() ? null : ops.get(ops.size() - 1);
    if (last != null && last.end == start && last.accessible == accessible) {
      ops.set(ops.size() - 1, new Op(last.start, end, accessible));
    } else {
      ops.add(new Op(start, end, accessible));
    }
  }

  /**
   * Whether the host may fault every page of the block at {@code b} once pages
   * {@code [changeStart, changeEnd)} are shared. Allocates nothing, and asks the arch (about every
   * page) only once the block is found all shared: accessors get here on every access to a mixed
   * block.
   */
  private boolean blockFaultableAfter(long b, long changeStart, long changeEnd) {
    long e = b + blockPages;
    if (e > inode.nrPages()) {
      return false;
    }
    ShareabilityStore store = inode.shareabilityStore();
    long s1 = Math.min(e, Math.max(b, changeStart));
    long s2 = Math.max(b, Math.min(e, changeEnd));
    return (b >= s1 || store.isUniform(b, s1, Shareability.SHARED))
        && (s2 >= e || store.isUniform(s2, e, Shareability.SHARED))
        && allHostFaultable(b, e);
  }

  /** Whether the arch lets the host fault every page of {@code [b, e)} once shared. */
  private boolean allHostFaultable(long b, long e) {
    for (long i = b; i < e; i++) {
      if (!inode.faults().hostMayFault(i, Shareability.SHARED)) {
        return false;
      }
    }
    return true;
  }

  /**
   * Everything fallible of {@code ops}: the VMAs they leave (charged to the budget) and, for each
   * remap, a spare file mapping that {@link Change#apply} moves into place with one mremap — so
   * that no mmap (hugetlbfs's may fail reserving pool pages) runs after a conversion's point of
   * no return.
   */
  private Change prepare(List<Op> ops) {
    if (ops.isEmpty()) {
      return new Change(ops, new long[0], 0, 0);
    }
    long lo = ops.get(0).start - firstPage;
    long hi = ops.get(ops.size() - 1).end - firstPage;
    lo = lo > 0 ? mapped.runAt(lo - 1).start() : lo;
    hi = hi < mapped.nrPages() ? mapped.runAt(hi).end() : hi;
    List<ShareabilityRange> before = mapped.ranges(lo, hi);
    List<Op> after = overlay(before, ops);
    if (blockPages > 1) {
      ops = joinFileRuns(ops, after);
    }
    long delta = after.size() - before.size();
    int spares = 0;
    for (Op op : ops) {
      spares += op.accessible ? 1 : 0;
    }
    budget.reserve(Math.max(0, delta));
    try {
      budget.reserveTransient(spares);
    } catch (RuntimeException e) {
      budget.release(Math.max(0, delta));
      throw e;
    }
    long[] spare = new long[ops.size()];
    try {
      for (int i = 0; i < ops.size(); i++) {
        Op op = ops.get(i);
        if (op.accessible) {
          spare[i] = sys.mmap(0, (op.end - op.start) << Folio.PAGE_SHIFT, prot, flags, inode.memory().get(), op.start << Folio.PAGE_SHIFT);
        }
      }
    } catch (RuntimeException e) {
      unmapSpares(ops, spare);
      budget.release(Math.max(0, delta) + spares);
      throw e;
    }
    return new Change(ops, spare, delta, spares);
  }

  /**
   * The region's maximal runs over {@code before}'s span once {@code ops} (sorted, disjoint)
   * apply, in file pages; {@code before} spans whole runs, so the two counts differ by exactly the
   * VMAs gained.
   */
  private List<Op> overlay(List<ShareabilityRange> before, List<Op> ops) {
    List<Op> out = new ArrayList<>();
    int o = 0;
    for (ShareabilityRange r : before) {
      long p = r.start() + firstPage;
      long rEnd = r.end() + firstPage;
      while (p < rEnd) {
        while (o < ops.size() && ops.get(o).end <= p) {
          o++;
        }
        boolean file;
        long next;
        if (o < ops.size() && ops.get(o).start <= p) {
          file = ops.get(o).accessible;
          next = Math.min(rEnd, ops.get(o).end);
        } else {
          file = r.shareability() == Shareability.SHARED;
          next = o < ops.size() ? Math.min(rEnd, ops.get(o).start) : rEnd;
        }
        Op last = out.isEmpty() ? null : out.get(out.size() - 1);
        if (last != null && last.accessible == file) {
          out.set(out.size() - 1, new Op(last.start, next, file));
        } else {
          out.add(new Op(p, next, file));
        }
        p = next;
      }
    }
    return out;
  }

  /**
   * hugetlbfs VMAs never merge, so a remap there maps the whole file run it ends up in: each file
   * run stays one VMA. Covers are kept as planned.
   */
  private static List<Op> joinFileRuns(List<Op> ops, List<Op> after) {
    List<Op> out = new ArrayList<>(ops.size());
    int o = 0;
    for (Op run : after) {
      boolean remapped = false;
      for (; o < ops.size() && ops.get(o).start < run.end; o++) {
        Op op = ops.get(o);
        if (op.accessible) {
          remapped = true;
        } else {
          out.add(op);
        }
      }
      if (remapped) {
        out.add(run);
      }
    }
    return out;
  }

  private void unmapSpares(List<Op> ops, long[] spare) {
    for (int i = 0; i < ops.size(); i++) {
      if (spare[i] != 0) {
        sys.munmap(spare[i], (ops.get(i).end - ops.get(i).start) << Folio.PAGE_SHIFT);
      }
    }
  }

  /** A prepared change of the region. */
  private final class Change implements MappingChange {
    private final List<Op> ops;
    private final long[] spare;
    private final long delta;
    private final int spares;

    Change(List<Op> ops, long[] spare, long delta, int spares) {
      this.ops = ops;
      this.spare = spare;
      this.delta = delta;
      this.spares = spares;
    }

    /**
     * Covers by mapping the empty memfd over the run, maps by moving the spare onto it: each one
     * call that replaces the run in place, and neither can fail for want of VMAs, which were
     * charged. Exposure is recorded for what a handed-out view now maps.
     */
    @Override
    public void apply() {
      synchronized (RawView.this) {
        if (!region.isOpen()) {
          abort(); // closed meanwhile: its address may be someone else's now
          return;
        }
        for (int i = 0; i < ops.size(); i++) {
          Op op = ops.get(i);
          long at = region.address() + ((op.start - firstPage) << Folio.PAGE_SHIFT);
          long len = (op.end - op.start) << Folio.PAGE_SHIFT;
          if (op.accessible) {
            sys.mremapFixed(spare[i], len, at);
            mapped.set(op.start - firstPage, op.end - firstPage, Shareability.SHARED);
            if (handedOut) {
              inode.exposure().add(op.start, Math.min(op.end, inode.nrPages()));
            }
          } else {
            sys.mmap(at, len, prot, flags | MapFlags.FIXED, inaccessible.fd(), op.start << Folio.PAGE_SHIFT);
            mapped.set(op.start - firstPage, op.end - firstPage, Shareability.PRIVATE);
          }
        }
        vmas += delta;
        budget.release(spares + Math.max(0, -delta));
      }
    }

    @Override
    public void abort() {
      unmapSpares(ops, spare);
      budget.release(Math.max(0, delta) + spares);
    }
  }

  /** Whether the file is mapped at every page of {@code [first, last]} (file pages). */
  boolean mapsAll(long first, long last) {
    return mapped.isUniform(first - firstPage, last + 1 - firstPage, Shareability.SHARED);
  }

  /**
   * The host may fault pages {@code [first, last]} (the caller holds the invalidate lock shared):
   * where a handed-out view still covers one of them, maps the part of its shared run the arch
   * lets the host fault (asked per page), a block at a time. A
   * backstop: conversions map pages back at once, so only a mixed huge page (whose shared pages
   * stay covered) normally gets here, and for it nothing changes.
   */
  void heal(long first, long last) {
    if (!handedOut || mapsAll(first, last)) {
      return;
    }
    for (long i = first; i <= last; i = (i & -blockPages) + blockPages) {
      if (mapped.get(i - firstPage) == Shareability.SHARED) {
        continue;
      }
      long s = i;
      long e = i + 1;
      if (blockPages == 1) {
        long blockStart = Math.max(firstPage, i & ~(HEAL_BLOCK - 1));
        long blockEnd = Math.min(Math.min(inode.nrPages(), regionEnd()), blockStart + HEAL_BLOCK);
        ShareabilityRange r = inode.shareabilityStore().runAt(i);
        s = Math.max(blockStart, r.start());
        e = Math.min(blockEnd, r.end());
        // Only the neighbours the arch lets the host fault: the run is uniform for the VMM, not
        // necessarily for the arch (i itself was checked by the fault that got here).
        boolean faultable = false;
        for (long[] run : inode.faults().hostRuns(s, e, r.shareability())) {
          if (run[0] <= i && i < run[1]) {
            s = run[0];
            e = run[1];
            faultable = run[2] != 0;
          }
        }
        if (!faultable) {
          continue; // the arch changed its mind since the fault: leave the page covered
        }
      }
      synchronized (this) {
        List<Op> ops = new ArrayList<>();
        plan(s, e, true, s, s, ops);
        prepare(ops).apply();
      }
    }
  }

  /**
   * Covers file pages {@code [startPage, endPage)} at once, handed out or not: pages that left the
   * inode for good (an arch leaked them). After a point of no return, so it cannot be refused:
   * the VMAs are charged even past gmem's share, which leaks are too rare to exhaust.
   */
  synchronized void retire(long startPage, long endPage) {
    if (!region.isOpen()) {
      return;
    }
    List<Op> ops = new ArrayList<>();
    plan(startPage, endPage, false, startPage, endPage, ops);
    if (ops.isEmpty()) {
      return;
    }
    long lo = ops.get(0).start - firstPage;
    long hi = ops.get(ops.size() - 1).end - firstPage;
    lo = lo > 0 ? mapped.runAt(lo - 1).start() : lo;
    hi = hi < mapped.nrPages() ? mapped.runAt(hi).end() : hi;
    List<ShareabilityRange> before = mapped.ranges(lo, hi);
    long delta = overlay(before, ops).size() - before.size();
    budget.charge(Math.max(0, delta));
    new Change(ops, new long[ops.size()], delta, 0).apply();
  }

  /** Unmaps the region and gives its VMAs back. */
  @Override
  public synchronized void close() {
    if (region.isOpen()) {
      region.close();
      budget.release(vmas);
      vmas = 0;
    }
  }
}
