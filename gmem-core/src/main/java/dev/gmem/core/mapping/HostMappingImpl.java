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
import dev.gmem.core.access.FastPageTable;
import dev.gmem.core.access.Rcu;
import dev.gmem.core.inode.GuestMemInodeImpl;
import dev.gmem.core.inode.GuestView;
import dev.gmem.core.convert.InodeMapping;
import dev.gmem.core.shareability.ShareabilityStore;
import dev.gmem.core.sys.Mapping;
import dev.gmem.core.sys.Sys;
import java.nio.ByteBuffer;
import java.util.Objects;
import java.util.concurrent.locks.Lock;

/**
 * A host mapping of a file range. Pages the host may not fault are covered by a mapping of an
 * empty memfd ({@link InaccessibleMemory}): any access to them raises SIGBUS, exactly as the
 * kernel does for a private guest_memfd page (and, unlike PROT_NONE, the JVM survives a SIGBUS in
 * an unsafe access). gmem's accessors check shareability first, so through them the host gets a
 * {@link GmemException} instead: under the inode's invalidate lock, or, for an access within one
 * page already faulted, lock-free against the inode's fast page table inside an RCU read-side
 * section that conversion, punch and eviction wait for ({@link #access}). A failed access faults
 * nothing in; one of zero bytes does nothing.
 *
 * <h2>Huge-page memory</h2>
 * A hugetlbfs mapping can be replaced only in whole huge pages (its VMAs split at huge-page
 * boundaries only), so where the memory's block is larger than a page the covering works per
 * block: a block is mapped only while every page of it is host-faultable; a block holding any
 * private page is covered whole. The accessors copy through a window of gmem's over the range
 * after the per-page check, so shared pages of such a mixed block stay reachable through gmem, while raw
 * access to the mapping's address faults for the whole block and {@link #buffer} refuses it.
 * The part of the mapping beyond EOF is covered too: hugetlbfs would reserve pool pages for it
 * and instantiate pages there on a fault.
 */
public final class HostMappingImpl implements HostMapping, InodeMapping {
  private static final MemoryIO IO = MemoryIO.getInstance();
  private static final long PAGE_MASK = Folio.PAGE_SIZE - 1;

  private final GuestMemFile file;
  private final GuestMemInodeImpl inode;
  private final InaccessibleMemory inaccessible;
  private final Sys sys;
  private final long offset;
  private final long length;
  private final int prot;
  private final Mapping mapping;
  private final long firstPage;
  /** Pages per block in which the mapping can be changed (1 but for huge-page memory). */
  private final long blockPages;
  /** Per mapped page: SHARED = the file is mapped there, PRIVATE = the SIGBUS memory is. */
  private final ShareabilityStore mapped;
  /**
   * Where the accessors copy: the mapping itself, whose private pages are covered, so no other
   * mapping of the range exists for them; on huge-page memory a window of gmem's
   * ({@link #accessorWindow}) at this mapping's offset.
   */
  private final long view;
  /** The window {@link #view} points into on huge-page memory, else null; closed with the mapping. */
  private final GuestView.Window accessorWindow;
  /** The inode's page table for lock-free accesses. */
  private final FastPageTable fastPages;
  /** Cleared first by {@link #close}; checked again under the invalidate lock by the locked path. */
  private volatile boolean open = true;

  private HostMappingImpl(GuestMemFile file, GuestMemInodeImpl inode, InaccessibleMemory inaccessible, long offset, long length,
      int prot, Mapping mapping, Shareability initiallyMapped, GuestView.Window accessorWindow) {
    this.file = file;
    this.inode = inode;
    this.inaccessible = inaccessible;
    this.sys = inode.sys();
    this.offset = offset;
    this.length = length;
    this.prot = prot;
    this.mapping = mapping;
    this.firstPage = offset >>> Folio.PAGE_SHIFT;
    this.blockPages = 1L << inode.hostBlockOrder();
    this.mapped = new ShareabilityStore((mapping.length() + Folio.PAGE_SIZE - 1) >>> Folio.PAGE_SHIFT, initiallyMapped);
    this.accessorWindow = accessorWindow;
    this.view = accessorWindow != null ? accessorWindow.address(offset) : mapping.address();
    this.fastPages = inode.fastPages();
  }

  /**
   * Huge-page memory only: the shared pages of a huge page that also holds private ones must stay
   * reachable for the accessors while the mapping covers that block whole, so they copy through a
   * window over the mapping's range inside EOF (none when it lies wholly beyond).
   */
  private static GuestView.Window accessorWindow(GuestMemInodeImpl inode, long offset, long length) {
    long first = offset >>> Folio.PAGE_SHIFT;
    long end = Math.min(inode.nrPages(), (offset + length + Folio.PAGE_SIZE - 1) >>> Folio.PAGE_SHIFT);
    return inode.hostBlockOrder() > 0 && first < end ? inode.guestView().acquire(first, end) : null;
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
   * Pages the host may not fault are never mapped, not even for a moment: under MAP_LOCKED, which
   * faults in what it maps, and on huge-page memory the region starts as SIGBUS memory and the
   * file is mapped over the pages the host may fault; otherwise the file is mapped and those pages
   * are covered before anyone can touch them (the inode's lock is held).
   *
   * <p>MAP_LOCKED locks what it maps now (the region is VM_LOCKED and its host-faultable pages are
   * faulted in); pages that become host-faultable later are mapped on demand, not locked, as a
   * fault would bring them in. On huge-page memory it populates only (hugetlb pages are never
   * swapped).
   */
  public static HostMappingImpl create(GuestMemFile file, GuestMemInodeImpl inode, InaccessibleMemory inaccessible, Placement where,
      long offset, long length, int prot, int mapFlags) {
    Sys sys = inode.sys();
    inode.acquire();
    Lock lock = inode.invalidateLock().readLock();
    lock.lock();
    Mapping region = null;
    GuestView.Window window = null;
    try {
      boolean huge = inode.hostBlockOrder() > 0;
      boolean locked = (mapFlags & MapFlags.LOCKED) != 0 && !huge;
      boolean covered = huge || locked;
      if (huge) {
        region = coveredRegion(inode, inaccessible, where, offset, length, prot);
      } else if (locked) {
        region = new Mapping(sys, sys.mmap(where.address(), length, prot, MapFlags.SHARED | MapFlags.FIXED | MapFlags.LOCKED, inaccessible.fd(), 0), length);
      } else {
        region = new Mapping(sys, sys.mmap(where.address(), length, prot, MapFlags.SHARED | MapFlags.FIXED, inode.memory().get(), offset), length);
      }
      window = accessorWindow(inode, offset, length);
      HostMappingImpl m = new HostMappingImpl(file, inode, inaccessible, offset, length, prot, region, covered ? Shareability.PRIVATE : Shareability.SHARED, window);
      // mmap populates for MAP_LOCKED, and for MAP_POPULATE unless MAP_NONBLOCK.
      boolean populate = (mapFlags & MapFlags.LOCKED) != 0 || (mapFlags & (MapFlags.POPULATE | MapFlags.NONBLOCK)) == MapFlags.POPULATE;
      long firstPage = offset >>> Folio.PAGE_SHIFT;
      long endPage = Math.min(inode.nrPages(), (offset + length + Folio.PAGE_SIZE - 1) >>> Folio.PAGE_SHIFT);
      if (firstPage < endPage) {
        for (ShareabilityRange r : inode.shareabilityRanges(firstPage, endPage)) {
          boolean faultable = inode.faults().hostMayFault(r.start(), r.shareability());
          if (faultable && populate) {
            m.allocate(r.start(), r.end()); // gmem's folios first, as a kernel fault allocates before it maps
          }
          if (faultable && locked) {
            m.mapFile(r.start(), r.end(), MapFlags.LOCKED); // the kernel faults them in here
          } else if (faultable && huge) {
            m.setAccessible(r.start(), r.end(), true);
          } else if (!faultable && !covered) {
            m.setAccessible(r.start(), r.end(), false);
          }
          if (faultable && populate && !locked) {
            m.prefault(r.start(), r.end());
          }
        }
      }
      inode.addMapping(m);
      return m;
    } catch (RuntimeException e) {
      if (region != null) {
        region.close();
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
   * For huge-page memory: a block-aligned region of whole blocks (the placement is), all SIGBUS
   * memory at first; the file's blocks are mapped over it as they become faultable.
   */
  private static Mapping coveredRegion(GuestMemInodeImpl inode, InaccessibleMemory inaccessible, Placement where, long offset, long length, int prot) {
    Sys sys = inode.sys();
    long block = Folio.PAGE_SIZE << inode.hostBlockOrder();
    if ((offset & (block - 1)) != 0) {
      // hugetlbfs_file_mmap's rule: the offset must be huge-page aligned.
      throw GmemException.einval("mmap offset 0x" + Long.toHexString(offset) + " not aligned to the huge page size 0x" + Long.toHexString(block));
    }
    long regionLength = (length + block - 1) & -block;
    return new Mapping(sys, sys.mmap(where.address(), regionLength, prot, MapFlags.SHARED | MapFlags.FIXED, inaccessible.fd(), 0), regionLength);
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
      sys.madvise(mapping.address() + rel, (endPage - startPage) << Folio.PAGE_SHIFT, advice);
    } catch (GmemException ignored) {
      // mm_populate's result is ignored by mmap(MAP_POPULATE) too.
    }
  }

  /**
   * Maps the file (accessible) or the SIGBUS memory over file pages {@code [startPage, endPage)}
   * of this mapping. Called to zap (conversion to private, under the exclusive lock) and to heal
   * lazily on the next host fault of a page that became shared, as the kernel's fault handler
   * maps a page only when it is touched. On huge-page memory the change widens to whole blocks:
   * a zap covers every block it touches, and only blocks the host may fault entirely are mapped.
   */
  @Override
  public synchronized void setAccessible(long startPage, long endPage, boolean accessible) {
    long mappedEnd = firstPage + mapped.nrPages();
    long first = Math.max(firstPage, startPage & -blockPages);
    long end = Math.min(mappedEnd, (endPage + blockPages - 1) & -blockPages);
    if (first >= end || !mapping.isOpen()) {
      return;
    }
    if (!accessible) {
      cover(first, end);
    } else if (blockPages == 1) {
      mapFile(first, end);
    } else {
      for (long b = first; b < end; ) {
        long runEnd = b;
        while (runEnd < end && blockFaultable(runEnd)) {
          runEnd += blockPages;
        }
        if (runEnd > b) {
          mapFile(b, runEnd);
        }
        b = Math.max(runEnd, b + blockPages);
      }
    }
  }

  private void cover(long first, long end) {
    sys.mmap(mapping.address() + (first - firstPage) * Folio.PAGE_SIZE, (end - first) << Folio.PAGE_SHIFT, prot,
        MapFlags.SHARED | MapFlags.FIXED, inaccessible.fd(), 0);
    mapped.set(first - firstPage, end - firstPage, Shareability.PRIVATE);
  }

  private void mapFile(long first, long end) {
    mapFile(first, end, 0);
  }

  /** Maps the file over pages {@code [first, end)}; {@code extraFlags} MAP_LOCKED also faults them in. */
  private void mapFile(long first, long end, int extraFlags) {
    sys.mmap(mapping.address() + (first - firstPage) * Folio.PAGE_SIZE, (end - first) << Folio.PAGE_SHIFT, prot,
        MapFlags.SHARED | MapFlags.FIXED | extraFlags, inode.memory().get(), first << Folio.PAGE_SHIFT);
    mapped.set(first - firstPage, end - firstPage, Shareability.SHARED);
  }

  /**
   * Whether the host may fault every page of the block at {@code b}, which lies inside EOF. Asks
   * the arch once per block (like {@link #create} once per run) and allocates nothing: accessors
   * ask it on every access to a mixed block.
   */
  private boolean blockFaultable(long b) {
    return b + blockPages <= inode.nrPages()
        && inode.shareabilityStore().isUniform(b, b + blockPages, Shareability.SHARED)
        && inode.faults().hostMayFault(b, Shareability.SHARED);
  }

  /** Pages healed per fault at most: one 2 MiB block, so a fault's work is bounded. */
  private static final long HEAL_BLOCK = 1L << Folio.PMD_ORDER;

  /** The host may fault {@code page} but it is still covered by SIGBUS memory: map its shared run. */
  private void heal(long page) {
    if (blockPages > 1) {
      setAccessible(page, page + 1, true);
      return;
    }
    long blockStart = Math.max(firstPage, page & ~(HEAL_BLOCK - 1));
    long blockEnd = Math.min(Math.min(inode.nrPages(), firstPage + mapped.nrPages()), blockStart + HEAL_BLOCK);
    for (ShareabilityRange r : inode.shareabilityRanges(blockStart, blockEnd)) {
      if (r.start() <= page && page < r.end()) {
        setAccessible(r.start(), r.end(), true);
        return;
      }
    }
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
    return mapping.address();
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
   * where to copy ({@link #view}). A page the host may fault that the mapping still covers (a
   * conversion that failed leaves it to the next fault) is mapped again before the fault installs
   * its fast-page-table entry: the lock-free path copies through the mapping. The caller holds the
   * invalidate lock shared.
   */
  private long fault(long off, long len, boolean write) {
    long first = (offset + off) >>> Folio.PAGE_SHIFT;
    long last = (offset + off + len - 1) >>> Folio.PAGE_SHIFT;
    if (!mapped.isUniform(first - firstPage, last + 1 - firstPage, Shareability.SHARED)) {
      inode.faults().checkHostFault(first, last + 1); // heal only what the host may fault
      for (long i = first; i <= last; i = (i & -blockPages) + blockPages) {
        if (mapped.get(i - firstPage) != Shareability.SHARED) {
          heal(i);
        }
      }
    }
    inode.faults().hostFault(first, last + 1, write);
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
   * The one access path of every accessor: checks the range and the mapping's protection; a
   * zero-length access ends there. An access within one page whose page the
   * {@linkplain FastPageTable fast page table} maps for the host runs {@code copy} at once, inside
   * an {@link Rcu} read-side section and without the lock: an invalidation (conversion, punch,
   * eviction) zaps the entry and waits for the section before it changes the page. Otherwise
   * {@link #lockedAccess}. Kept small so that it inlines into each accessor.
   */
  private long access(long off, long len, int needProt, long value, Copy copy) {
    checkRange(off, len, needProt);
    if (len == 0) {
      return 0;
    }
    long at = offset + off;
    if ((at & PAGE_MASK) + len <= Folio.PAGE_SIZE) {
      Rcu.Reader r = Rcu.GLOBAL.reader();
      r.lock();
      try {
        if (open && fastPages.isMapped(at >>> Folio.PAGE_SHIFT, FastPageTable.Kind.HOST)) {
          return copy.at(view + off, value); // close() waits for this section before it unmaps
        }
      } finally {
        r.unlock();
      }
    }
    return lockedAccess(off, len, needProt, value, copy);
  }

  /**
   * The slow path: under the invalidate lock taken shared, host-faults the pages of
   * {@code [off, off+len)} (installing their fast-page-table entries) and runs {@code copy} at
   * their address in the guest view. A write fault when {@code needProt} includes
   * {@link Prot#WRITE}. {@code len > 0}.
   */
  private long lockedAccess(long off, long len, int needProt, long value, Copy copy) {
    Lock l = inode.invalidateLock().readLock();
    l.lock();
    try {
      if (!open) {
        throw closed(); // closed meanwhile: the guest view may be gone as soon as we unlock
      }
      return copy.at(fault(off, len, (needProt & Prot.WRITE) != 0), value);
    } finally {
      l.unlock();
    }
  }

  @Override
  public byte getByte(long off) {
    return (byte) access(off, 1, Prot.READ, 0, (a, v) -> IO.getByte(a));
  }

  @Override
  public void putByte(long off, byte value) {
    access(off, 1, Prot.WRITE, value, (a, v) -> {
      IO.putByte(a, (byte) v);
      return 0;
    });
  }

  @Override
  public long getLong(long off) {
    return access(off, Long.BYTES, Prot.READ, 0, (a, v) -> IO.getLong(a));
  }

  @Override
  public void putLong(long off, long value) {
    access(off, Long.BYTES, Prot.WRITE, value, (a, v) -> {
      IO.putLong(a, v);
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
    if (len > 0) {
      lockedAccess(off, len, needProt, 0, (a, v) -> {
        long first = (offset + off) >>> Folio.PAGE_SHIFT;
        long last = (offset + off + len - 1) >>> Folio.PAGE_SHIFT;
        if (!mapped.isUniform(first - firstPage, last + 1 - firstPage, Shareability.SHARED)) {
          throw new GmemException(Errno.EFAULT, "[0x" + Long.toHexString(off) + ", +0x" + Integer.toHexString(len)
              + ") lies in a huge page that also holds pages the host may not fault: the mapping covers it whole; use the accessors");
        }
        return 0;
      });
    }
    ByteBuffer b = Sys.buffer(mapping.address() + off, len);
    return (prot & Prot.WRITE) != 0 ? b : b.asReadOnlyBuffer();
  }

  /**
   * Unmaps. Accessors that start afterwards fail with EFAULT. The accessors copy through the
   * mapping itself, so none may be in flight when it goes: one on the lock-free path re-checks
   * {@code open} inside its RCU section, which this waits for; one on the locked path holds the
   * invalidate lock shared, which this takes exclusive. The unmapping itself is under this
   * object's monitor, so that no {@link #setAccessible} maps into the region after it is unmapped
   * (the address may belong to someone else by then).
   */
  @Override
  public void close() {
    synchronized (this) {
      if (!open) {
        return;
      }
      open = false;
    }
    Rcu.GLOBAL.synchronize();
    Lock l = inode.invalidateLock().writeLock();
    l.lock();
    try {
      synchronized (this) {
        inode.removeMapping(this);
        mapping.close();
      }
      if (accessorWindow != null) {
        accessorWindow.close();
      }
    } finally {
      l.unlock();
    }
    inode.release();
  }
}
