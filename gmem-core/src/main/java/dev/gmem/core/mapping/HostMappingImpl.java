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
 * an unsafe access). gmem's accessors check shareability under the inode's invalidate lock first,
 * so through them the host gets a {@link GmemException} instead.
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
   * Where the accessors copy: the mapping itself, whose private pages are covered; on huge-page
   * memory a window of gmem's ({@link #accessorWindow}) at this mapping's offset.
   */
  private final long view;
  /** The window {@link #view} points into on huge-page memory, else null; closed with the mapping. */
  private final GuestView.Window accessorWindow;

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
  }

  /**
   * Huge-page memory only: the shared pages of a huge page that also holds private ones must stay
   * reachable for the accessors while the mapping covers that block whole, so they copy through a
   * window over the mapping's range inside EOF (none when it lies wholly beyond). Elsewhere the
   * mapping is covered per page and the accessors copy through it: no other mapping of the range
   * exists for them, private pages included.
   */
  private static GuestView.Window accessorWindow(GuestMemInodeImpl inode, long offset, long length) {
    long first = offset >>> Folio.PAGE_SHIFT;
    long end = Math.min(inode.nrPages(), (offset + length + Folio.PAGE_SIZE - 1) >>> Folio.PAGE_SHIFT);
    return inode.hostBlockOrder() > 0 && first < end ? inode.guestView().acquire(first, end) : null;
  }

  /** Maps after the file layer validated the arguments; registers with the inode. */
  public static HostMappingImpl create(
      GuestMemFile file, GuestMemInodeImpl inode, InaccessibleMemory inaccessible, long offset, long length, int prot, int mapFlags) {
    Sys sys = inode.sys();
    inode.acquire();
    Lock lock = inode.invalidateLock().readLock();
    lock.lock();
    HostMappingImpl m = null;
    GuestView.Window window = null;
    Mapping region = null;
    try {
      boolean huge = inode.hostBlockOrder() > 0;
      region = huge
          ? coveredRegion(inode, inaccessible, offset, length, prot)
          : new Mapping(sys, sys.mmap(0, length, prot, MapFlags.SHARED | (mapFlags & MapFlags.LOCKED), inode.memory().get(), offset), length);
      window = accessorWindow(inode, offset, length);
      m = new HostMappingImpl(file, inode, inaccessible, offset, length, prot, region, huge ? Shareability.PRIVATE : Shareability.SHARED, window);
      long firstPage = offset >>> Folio.PAGE_SHIFT;
      long endPage = Math.min(inode.nrPages(), (offset + length) >>> Folio.PAGE_SHIFT);
      if (firstPage < endPage) {
        for (ShareabilityRange r : inode.shareabilityRanges(firstPage, endPage)) {
          boolean faultable = inode.arch().hostMayFault(r.start(), r.shareability());
          if (faultable && huge) {
            m.setAccessible(r.start(), r.end(), true);
          } else if (!faultable && !huge) {
            m.setAccessible(r.start(), r.end(), false);
          }
          if (faultable && (mapFlags & MapFlags.POPULATE) != 0) {
            m.populate(r.start(), r.end());
          }
        }
      }
      inode.addMapping(m);
      return m;
    } catch (RuntimeException e) {
      if (region != null) {
        region.close();
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
   * For huge-page memory: a block-aligned region of whole blocks, all SIGBUS memory at first
   * (the file's blocks are mapped over it as they become faultable). Mapped with a block of slack
   * and trimmed, since the kernel aligns only hugetlbfs mappings to the huge page size. MAP_LOCKED
   * is moot: hugetlb pages are never swapped.
   */
  private static Mapping coveredRegion(GuestMemInodeImpl inode, InaccessibleMemory inaccessible, long offset, long length, int prot) {
    Sys sys = inode.sys();
    long block = Folio.PAGE_SIZE << inode.hostBlockOrder();
    if ((offset & (block - 1)) != 0) {
      // hugetlbfs_file_mmap's rule: the offset must be huge-page aligned.
      throw GmemException.einval("mmap offset 0x" + Long.toHexString(offset) + " not aligned to the huge page size 0x" + Long.toHexString(block));
    }
    long regionLength = (length + block - 1) & -block;
    long raw = sys.mmap(0, regionLength + block, prot, MapFlags.SHARED, inaccessible.fd(), 0);
    long start = (raw + block - 1) & -block;
    if (start > raw) {
      sys.munmap(raw, start - raw);
    }
    sys.munmap(start + regionLength, raw + block - start);
    return new Mapping(sys, start, regionLength);
  }

  /** MAP_POPULATE: best effort, as in the kernel, which ignores population failures and PROT_NONE. */
  private void populate(long startPage, long endPage) {
    if ((prot & Prot.READ_WRITE) == 0) {
      return;
    }
    for (long i = startPage; i < endPage; i++) {
      inode.faults().ensureFolio(i);
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
    sys.mmap(mapping.address() + (first - firstPage) * Folio.PAGE_SIZE, (end - first) << Folio.PAGE_SHIFT, prot,
        MapFlags.SHARED | MapFlags.FIXED, inode.memory().get(), first << Folio.PAGE_SHIFT);
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
        && inode.arch().hostMayFault(b, Shareability.SHARED);
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
    return mapping.isOpen();
  }

  private void checkRange(long off, long len, int needProt) {
    if (!mapping.isOpen()) {
      throw new GmemException(Errno.EFAULT, "mapping is closed");
    }
    if (off < 0 || len < 0 || off > length - len) {
      throw new GmemException(Errno.EFAULT, "access [" + off + ", +" + len + ") outside mapping of " + length + " bytes");
    }
    if ((prot & needProt) != needProt) {
      throw new GmemException(Errno.EFAULT, "mapping prot " + prot + " does not allow " + (needProt == Prot.WRITE ? "writes" : "reads"));
    }
  }

  /**
   * Host-faults every page of {@code [off, off+len)}, heals the mapping where it still covers them,
   * and returns where to copy ({@link #view}). The caller holds the invalidate lock shared.
   */
  private long fault(long off, long len, boolean write) {
    if (!mapping.isOpen()) {
      throw new GmemException(Errno.EFAULT, "mapping is closed");
    }
    long first = (offset + off) >>> Folio.PAGE_SHIFT;
    long last = (offset + off + Math.max(len, 1) - 1) >>> Folio.PAGE_SHIFT;
    for (long i = first; i <= last; i++) {
      inode.faults().hostFault(i, write);
    }
    if (!mapped.isUniform(first - firstPage, last + 1 - firstPage, Shareability.SHARED)) {
      // Heals the mapping, a block at a time: the accessors copy through it (but on huge-page
      // memory, where a mixed block stays covered and they copy through the window).
      for (long i = first; i <= last; i = (i & -blockPages) + blockPages) {
        if (mapped.get(i - firstPage) != Shareability.SHARED) {
          heal(i);
        }
      }
    }
    return view + off;
  }

  /** What an access does at the address the access path hands it; returns the loaded value, or 0. */
  @FunctionalInterface
  private interface Copy {
    long at(long address);
  }

  /**
   * The one access path of every accessor: checks the range and the mapping's protection, then,
   * under the invalidate lock taken shared, host-faults the pages of {@code [off, off+len)} and
   * runs {@code copy} at their address in the guest view. {@code needProt} says which protection
   * the access needs; it is a write fault when that includes {@link Prot#WRITE}.
   */
  private long access(long off, long len, int needProt, Copy copy) {
    checkRange(off, len, needProt);
    Lock l = inode.invalidateLock().readLock();
    l.lock();
    try {
      return copy.at(fault(off, len, (needProt & Prot.WRITE) != 0));
    } finally {
      l.unlock();
    }
  }

  @Override
  public byte getByte(long off) {
    return (byte) access(off, 1, Prot.READ, IO::getByte);
  }

  @Override
  public void putByte(long off, byte value) {
    access(off, 1, Prot.WRITE, a -> {
      IO.putByte(a, value);
      return 0;
    });
  }

  @Override
  public long getLong(long off) {
    return access(off, Long.BYTES, Prot.READ, IO::getLong);
  }

  @Override
  public void putLong(long off, long value) {
    access(off, Long.BYTES, Prot.WRITE, a -> {
      IO.putLong(a, value);
      return 0;
    });
  }

  @Override
  public void read(long off, byte[] dst, int dstIndex, int len) {
    Objects.checkFromIndexSize(dstIndex, len, dst.length);
    access(off, len, Prot.READ, a -> {
      IO.getByteArray(a, dst, dstIndex, len);
      return 0;
    });
  }

  @Override
  public void write(long off, byte[] src, int srcIndex, int len) {
    Objects.checkFromIndexSize(srcIndex, len, src.length);
    access(off, len, Prot.WRITE, a -> {
      IO.putByteArray(a, src, srcIndex, len);
      return 0;
    });
  }

  @Override
  public void fill(long off, long len, byte value) {
    access(off, len, Prot.WRITE, a -> {
      IO.setMemory(a, len, value);
      return 0;
    });
  }

  /**
   * Faults the range in as a write where the mapping allows writes, like the accessors, and hands
   * out the mapping itself, which must map every page of the range.
   */
  @Override
  public ByteBuffer buffer(long off, int len) {
    access(off, len, Prot.READ | (prot & Prot.WRITE), a -> {
      long first = (offset + off) >>> Folio.PAGE_SHIFT;
      long last = (offset + off + Math.max(len, 1) - 1) >>> Folio.PAGE_SHIFT;
      if (!mapped.isUniform(first - firstPage, last + 1 - firstPage, Shareability.SHARED)) {
        throw new GmemException(Errno.EFAULT, "[0x" + Long.toHexString(off) + ", +0x" + Integer.toHexString(len)
            + ") lies in a huge page that also holds pages the host may not fault: the mapping covers it whole; use the accessors");
      }
      return 0;
    });
    ByteBuffer b = Sys.buffer(mapping.address() + off, len);
    return (prot & Prot.WRITE) != 0 ? b : b.asReadOnlyBuffer();
  }

  @Override
  public void close() {
    if (!mapping.isOpen()) {
      return;
    }
    // Exclusive: the accessors copy through the mapping under the lock held shared, so none is
    // in flight while it goes (each re-checks that it is open under the lock).
    Lock l = inode.invalidateLock().writeLock();
    l.lock();
    try {
      if (!mapping.isOpen()) {
        return; // a concurrent close won: it drops the reference
      }
      inode.removeMapping(this);
      mapping.close();
      if (accessorWindow != null) {
        accessorWindow.close();
      }
    } finally {
      l.unlock();
    }
    inode.release();
  }
}
