package dev.gmem.core.mapping;

import com.kenai.jffi.MemoryIO;
import dev.gmem.api.Errno;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.MapFlags;
import dev.gmem.api.Prot;
import dev.gmem.api.Shareability;
import dev.gmem.api.ShareabilityRange;
import dev.gmem.core.access.Direct;
import dev.gmem.core.access.FastPageTable;
import dev.gmem.core.access.Rcu;
import dev.gmem.core.inode.GuestMemInodeImpl;
import dev.gmem.core.inode.GuestView;
import dev.gmem.core.convert.InodeMapping;
import dev.gmem.core.convert.MappingChange;
import dev.gmem.core.shareability.ShareabilityStore;
import dev.gmem.core.sys.Mapping;
import dev.gmem.core.sys.Sys;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.locks.Lock;

/**
 * A host mapping of a file range. gmem's accessors check shareability first, so through them the
 * host gets a {@link GmemException} for a page it may not fault: under the inode's invalidate
 * lock, or, for an access within one page already faulted, lock-free against the inode's fast page
 * table inside an RCU read-side section that conversion, punch and eviction wait for
 * ({@link #access}); either way they copy through a window of gmem's over the mapping's range
 * (inside EOF), held while the mapping lives. A failed access faults
 * nothing in; one of zero bytes does nothing. The mapping's own memory is the raw view
 * ({@link #address}, {@link #buffer}), kept by {@link RawView}: pages the host may not fault are
 * covered there by SIGBUS memory from the moment the raw view is handed out.
 */
public final class HostMappingImpl implements HostMapping, InodeMapping {
  private static final MemoryIO IO = MemoryIO.getInstance();
  private static final long PAGE_MASK = Folio.PAGE_SIZE - 1;

  private final GuestMemFile file;
  private final GuestMemInodeImpl inode;
  private final long offset;
  private final long length;
  private final int prot;
  private final RawView raw;
  /**
   * Where the accessors copy: {@link #window} at this mapping's offset. One field and one add per
   * access; 0 for a mapping wholly beyond EOF, whose accesses all fail before they copy.
   */
  private final long view;
  /** gmem's window over the mapping's range inside EOF (null when there is none); closed with the mapping. */
  private final GuestView.Window window;
  /** The inode's page table for lock-free accesses. */
  private final FastPageTable fastPages;
  /**
   * The {@linkplain FastPageTable#plane host plane} of {@link #fastPages} where this mapping
   * allows reads (writes), else {@link #DEAD}; {@link #DEAD} as well for a large table (no plane:
   * {@link #slowAccess} looks it up) and from {@link #close} on, which stores it before it waits
   * for the grace period. So the lock-free path's one lookup answers for prot and for whether the
   * mapping is open too. Volatile for safe publication only: inside the read-side section its
   * load is ordered by the section's fence already (a plain load on x86).
   */
  private volatile long[] readPlane;
  private volatile long[] writePlane;
  /** Cleared first by {@link #close}; checked again under the invalidate lock by the locked path. */
  private volatile boolean open = true;

  /** A plane that maps no page (its length bounds every page out). */
  private static final long[] DEAD = new long[0];

  private HostMappingImpl(GuestMemFile file, GuestMemInodeImpl inode, long offset, long length, int prot, RawView raw, GuestView.Window window) {
    this.file = file;
    this.inode = inode;
    this.offset = offset;
    this.length = length;
    this.prot = prot;
    this.raw = raw;
    this.window = window;
    this.view = window == null ? 0 : window.address(offset);
    this.fastPages = inode.fastPages();
    long[] plane = fastPages.plane(FastPageTable.Kind.HOST);
    this.readPlane = plane != null && (prot & Prot.READ) != 0 ? plane : DEAD;
    this.writePlane = plane != null && (prot & Prot.WRITE) != 0 ? plane : DEAD;
  }

  /** {@link #create(GuestMemFile, GuestMemInodeImpl, InaccessibleMemory, Placement, long, long, int, int)} where the kernel chooses. */
  public static HostMappingImpl create(
      GuestMemFile file, GuestMemInodeImpl inode, InaccessibleMemory inaccessible, long offset, long length, int prot, int mapFlags) {
    long block = Folio.PAGE_SIZE << inode.hostBlockOrder();
    Placement where = Placement.reserve(inode.sys(), 0, (length + block - 1) & -block, 0, block);
    return create(file, inode, inaccessible, where, offset, length, prot, mapFlags);
  }

  /**
   * Maps into {@code where} after the file layer validated the arguments; registers with the inode.
   * Pages the host may not fault are never mapped for anyone who could touch them: the raw view is
   * kept in step from its hand-out on (see {@link RawView}), which is at once where the caller
   * chose the address (MAP_FIXED, MAP_FIXED_NOREPLACE) or where MAP_LOCKED must fault in what the
   * host may fault, and only that (the region then starts as SIGBUS memory).
   *
   * <p>MAP_LOCKED locks what it maps (every piece of the region is VM_LOCKED); on huge-page memory
   * it populates only (hugetlb pages are never swapped).
   */
  public static HostMappingImpl create(GuestMemFile file, GuestMemInodeImpl inode, InaccessibleMemory inaccessible, Placement where,
      long offset, long length, int prot, int mapFlags) {
    inode.acquire();
    Lock lock = inode.invalidateLock().readLock();
    lock.lock();
    RawView raw = null;
    GuestView.Window window = null;
    try {
      window = accessorWindow(inode, offset, length);
      raw = RawView.map(inode, inaccessible, where, offset, length, prot, mapFlags);
      HostMappingImpl m = new HostMappingImpl(file, inode, offset, length, prot, raw, window);
      // mmap populates for MAP_LOCKED, and for MAP_POPULATE unless MAP_NONBLOCK.
      boolean locked = (mapFlags & MapFlags.LOCKED) != 0;
      boolean populate = locked || (mapFlags & (MapFlags.POPULATE | MapFlags.NONBLOCK)) == MapFlags.POPULATE;
      long firstPage = offset >>> Folio.PAGE_SHIFT;
      long endPage = Math.min(inode.nrPages(), (offset + length + Folio.PAGE_SIZE - 1) >>> Folio.PAGE_SHIFT);
      List<ShareabilityRange> faultable = new ArrayList<>();
      if (firstPage < endPage) {
        for (ShareabilityRange r : inode.shareabilityRanges(firstPage, endPage)) {
          for (long[] run : inode.faults().hostRuns(r.start(), r.end(), r.shareability())) {
            if (run[2] != 0) {
              faultable.add(new ShareabilityRange(run[0], run[1], r.shareability()));
            }
          }
        }
      }
      if (populate) {
        faultable.forEach(r -> m.allocate(r.start(), r.end())); // gmem's folios first, as a kernel fault allocates before it maps
      }
      // Handed out at once where the caller chose the address, or where mmap must fault the raw
      // view's pages in (MAP_LOCKED; MAP_POPULATE populates this mapping's page tables).
      if ((mapFlags & (MapFlags.FIXED | MapFlags.FIXED_NOREPLACE | MapFlags.LOCKED)) != 0 || (populate && !locked)) {
        raw.handOut();
      }
      if (populate && !locked) {
        faultable.forEach(r -> m.prefault(r.start(), r.end()));
      }
      inode.addMapping(m);
      return m;
    } catch (RuntimeException e) {
      if (raw != null) {
        raw.close();
      } else {
        where.release();
      }
      if (window != null) {
        window.close();
      }
      inode.release();
      throw e;
    } finally {
      lock.unlock();
    }
  }

  /**
   * The window the accessors copy through: the mapping's range inside EOF, none when it lies
   * wholly beyond (hugetlbfs rounds it to whole huge pages).
   */
  private static GuestView.Window accessorWindow(GuestMemInodeImpl inode, long offset, long length) {
    long first = offset >>> Folio.PAGE_SHIFT;
    long end = Math.min(inode.nrPages(), (offset + length + Folio.PAGE_SIZE - 1) >>> Folio.PAGE_SHIFT);
    return first < end ? inode.guestView().acquire(first, end) : null;
  }

  /** MAP_POPULATE / MAP_LOCKED: gmem's folios for pages the mapping can reach (PROT_NONE reaches none). */
  private void allocate(long startPage, long endPage) {
    if ((prot & Prot.READ_WRITE) == 0) {
      return;
    }
    for (long i = startPage; i < endPage; i++) {
      inode.faults().ensureFolio(i);
    }
  }

  /** MAP_POPULATE: best effort, as in the kernel, which ignores population failures and PROT_NONE. */
  private void prefault(long startPage, long endPage) {
    if ((prot & Prot.READ_WRITE) == 0) {
      return;
    }
    long rel = (startPage << Folio.PAGE_SHIFT) - offset;
    int advice = (prot & Prot.WRITE) != 0 ? Sys.MADV_POPULATE_WRITE : Sys.MADV_POPULATE_READ;
    try {
      inode.sys().madvise(raw.address() + rel, (endPage - startPage) << Folio.PAGE_SHIFT, advice);
    } catch (GmemException ignored) {
      // mm_populate's result is ignored by mmap(MAP_POPULATE) too.
    }
  }

  @Override
  public MappingChange prepareAccess(long startPage, long endPage, boolean accessible) {
    return raw.prepareAccess(startPage, endPage, accessible);
  }

  @Override
  public void retire(long startPage, long endPage) {
    raw.retire(startPage, endPage);
  }

  @Override
  public GuestMemFile file() {
    return file;
  }

  @Override
  public long offset() {
    return offset;
  }

  @Override
  public long length() {
    return length;
  }

  @Override
  public int prot() {
    return prot;
  }

  @Override
  public long address() {
    raw.handOut();
    return raw.address();
  }

  @Override
  public boolean isOpen() {
    return open;
  }

  private void checkRange(long off, long len, int needProt) {
    if (!open || off < 0 || len < 0 || off > length - len || (prot & needProt) != needProt) {
      throw rangeError(off, len, needProt);
    }
  }

  private GmemException rangeError(long off, long len, int needProt) {
    if (!open) {
      return closed();
    }
    if (off < 0 || len < 0 || off > length - len) {
      return new GmemException(Errno.EFAULT, "access [" + off + ", +" + len + ") outside mapping of " + length + " bytes");
    }
    return new GmemException(Errno.EFAULT, "mapping prot " + prot + " does not allow " + (needProt == Prot.WRITE ? "writes" : "reads"));
  }

  private static GmemException closed() {
    return new GmemException(Errno.EFAULT, "mapping is closed");
  }

  /**
   * Host-faults every page of {@code [off, off+len)}, {@code len > 0}, all or nothing, and returns
   * where to copy: gmem's window, so that shared pages of a huge page that also holds private
   * ones, which the raw view must cover, stay reachable. The caller holds the invalidate lock
   * shared.
   */
  private long fault(long off, long len, boolean write) {
    long first = (offset + off) >>> Folio.PAGE_SHIFT;
    long last = (offset + off + len - 1) >>> Folio.PAGE_SHIFT;
    inode.faults().hostFault(first, last + 1, write);
    raw.heal(first, last);
    return view + off;
  }

  /**
   * What an access does at the address the access path hands it, with the value to store (scalar
   * stores); returns the loaded value, or 0. The scalar accessors pass lambdas that capture
   * nothing, so the lock-free path allocates nothing.
   */
  @FunctionalInterface
  private interface Copy {
    long at(long address, long value);
  }

  /**
   * The one access path of every accessor, its lock-free part: an access within one page of the
   * mapping, whose page the mapping's plane ({@link #readPlane}, {@link #writePlane}) maps, runs
   * {@code copy} at once, inside an {@link Rcu} read-side section and without the lock: an
   * invalidation (conversion, punch, eviction) clears the bit, and {@link #close} swaps the plane
   * for {@link #DEAD}, each then waiting for the section before it changes the page or unmaps the
   * window. Everything else is {@link #slowAccess}. Kept tiny, the cold paths out of line, so that
   * it inlines into each accessor and {@code copy} is the accessor's own lambda there (C2's
   * PrintInlining shows the lambda and the load inlined, no call left).
   *
   * <p>Measured (thread CPU time per {@code getLong}, scratch loop, minimum of 40 rounds of
   * 5*10^6, an idle moment of the 2-core VM, A/B in alternating JVMs): 3.10 ns against 0.58 for
   * {@code ByteBuffer.getLong} on the same page (3.23 with the previous RCU reader lookup). Where
   * the 2.5 ns above the raw load go: the read-side section about 0.9 (without it, unsafely, 2.23–2.30;
   * see {@link Rcu}), the rest about 1.65 — the plane's bit test (its reference, length and word;
   * about 0.7 in an earlier breakdown), the out-of-line {@link #slowAccess} call's presence (about
   * 0.8 then: registers live across it), the bounds and page tests and the mapping's fields. (The
   * two bounds tests as one sign test, {@code (off | (length - len - off)) >= 0}, measured 0.12 ns
   * slower and were not kept.) No single part dominates, and each guards something: the section is
   * what {@link #close} and every invalidation wait for, the plane answers for prot, open and the
   * page's state at once, the bounds keep the access in the mapping.
   */
  private long access(long off, long len, int needProt, long value, Copy copy) {
    long at = offset + off;
    // 0 <= off <= length - len in one sign test: both terms are non-negative, neither overflows then
    if (off >= 0 && len > 0 && off <= length - len && (at & PAGE_MASK) + len <= Folio.PAGE_SIZE) {
      int slot = Rcu.GLOBAL.enter();
      if (slot >= 0) {
        try {
          // A plane other than DEAD is a small inode's (at most 2^20 pages), and at lies in the file: an int page.
          if (FastPageTable.isMapped(needProt == Prot.WRITE ? writePlane : readPlane, (int) (at >>> Folio.PAGE_SHIFT))) {
            return copy.at(view + off, value); // close() waits for this section before the window goes
          }
        } finally {
          Rcu.exit(slot);
        }
      }
    }
    return slowAccess(off, len, needProt, value, copy);
  }

  /**
   * What the plane did not answer: a range or prot error, a closed mapping, a zero-length access
   * (of an open mapping: nothing), a large file's page (a radix table has no plane: looked up
   * here, still lock-free), else {@link #lockedAccess} — a page not faulted yet, or an access
   * across pages.
   */
  private long slowAccess(long off, long len, int needProt, long value, Copy copy) {
    checkRange(off, len, needProt);
    if (len == 0) {
      return 0;
    }
    long at = offset + off;
    int slot;
    if (fastPages.plane(FastPageTable.Kind.HOST) == null && (at & PAGE_MASK) + len <= Folio.PAGE_SIZE && (slot = Rcu.GLOBAL.enter()) >= 0) {
      try {
        // open: checked inside the section that close() waits for
        if (open && fastPages.isMapped(at >>> Folio.PAGE_SHIFT, FastPageTable.Kind.HOST)) {
          return copy.at(view + off, value);
        }
      } finally {
        Rcu.exit(slot);
      }
    }
    return lockedAccess(off, len, needProt, value, copy);
  }

  /**
   * The slow path: under the invalidate lock taken shared, host-faults the pages of
   * {@code [off, off+len)} (installing their fast-page-table entries) and runs {@code copy} at
   * their address in gmem's window. A write fault when {@code needProt} includes
   * {@link Prot#WRITE}. {@code len > 0}.
   */
  private long lockedAccess(long off, long len, int needProt, long value, Copy copy) {
    Lock l = inode.invalidateLock().readLock();
    l.lock();
    try {
      if (!open) {
        throw closed(); // closed meanwhile: the window may be gone as soon as we unlock
      }
      return copy.at(fault(off, len, (needProt & Prot.WRITE) != 0), value);
    } finally {
      l.unlock();
    }
  }

  @Override
  public byte getByte(long off) {
    return (byte) access(off, 1, Prot.READ, 0, (a, v) -> Direct.getByte(a));
  }

  @Override
  public void putByte(long off, byte value) {
    access(off, 1, Prot.WRITE, value, (a, v) -> {
      Direct.putByte(a, (byte) v);
      return 0;
    });
  }

  @Override
  public long getLong(long off) {
    return access(off, Long.BYTES, Prot.READ, 0, (a, v) -> Direct.getLong(a));
  }

  @Override
  public void putLong(long off, long value) {
    access(off, Long.BYTES, Prot.WRITE, value, (a, v) -> {
      Direct.putLong(a, v);
      return 0;
    });
  }

  @Override
  public void read(long off, byte[] dst, int dstIndex, int len) {
    Objects.checkFromIndexSize(dstIndex, len, dst.length);
    access(off, len, Prot.READ, 0, (a, v) -> {
      IO.getByteArray(a, dst, dstIndex, len);
      return 0;
    });
  }

  @Override
  public void write(long off, byte[] src, int srcIndex, int len) {
    Objects.checkFromIndexSize(srcIndex, len, src.length);
    access(off, len, Prot.WRITE, 0, (a, v) -> {
      IO.putByteArray(a, src, srcIndex, len);
      return 0;
    });
  }

  @Override
  public void fill(long off, long len, byte value) {
    access(off, len, Prot.WRITE, value, (a, v) -> {
      IO.setMemory(a, len, (byte) v);
      return 0;
    });
  }

  /**
   * Faults the range in as a write where the mapping allows writes, like the accessors, and hands
   * out the mapping itself, which must map every page of the range. Always the locked path: it
   * heals the raw mapping, which the lock-free path never looks at.
   */
  @Override
  public ByteBuffer buffer(long off, int len) {
    int needProt = Prot.READ | (prot & Prot.WRITE);
    checkRange(off, len, needProt);
    raw.handOut();
    if (len > 0) {
      lockedAccess(off, len, needProt, 0, (a, v) -> {
        long first = (offset + off) >>> Folio.PAGE_SHIFT;
        long last = (offset + off + len - 1) >>> Folio.PAGE_SHIFT;
        if (!raw.mapsAll(first, last)) {
          throw new GmemException(Errno.EFAULT, "[0x" + Long.toHexString(off) + ", +0x" + Integer.toHexString(len)
              + ") lies in a huge page that also holds pages the host may not fault: the mapping covers it whole; use the accessors");
        }
        return 0;
      });
    }
    ByteBuffer b = Sys.buffer(raw.address() + off, len);
    return (prot & Prot.WRITE) != 0 ? b : b.asReadOnlyBuffer();
  }

  /**
   * Unmaps. Accessors that start afterwards fail with EFAULT; none is in flight when the window
   * goes: one on the lock-free path loads its plane (or, for a large file, {@code open}) inside its
   * RCU section, which this waits for after it stored {@link #DEAD}, and one on the locked path holds the invalidate lock shared, which this takes
   * exclusive. A conversion's prepared change of the raw view finds it closed and maps nothing
   * into the address, which may belong to someone else by then.
   */
  @Override
  public void close() {
    synchronized (this) {
      if (!open) {
        return;
      }
      open = false;
      readPlane = DEAD;
      writePlane = DEAD;
    }
    Rcu.GLOBAL.synchronize();
    Lock l = inode.invalidateLock().writeLock();
    l.lock();
    try {
      synchronized (this) {
        inode.removeMapping(this);
        raw.close();
      }
      if (window != null) {
        window.close();
      }
    } finally {
      l.unlock();
    }
    inode.release();
  }
}
