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
 * A host mapping of a file range. gmem's accessors check shareability under the inode's
 * invalidate lock and copy through the inode's guest view, so through them the host gets a
 * {@link GmemException} for a page it may not fault. The mapping's own memory is the raw view
 * ({@link #address}, {@link #buffer}), kept by {@link RawView}: pages the host may not fault are
 * covered there by SIGBUS memory from the moment the raw view is handed out.
 */
public final class HostMappingImpl implements HostMapping, InodeMapping {
  private static final MemoryIO IO = MemoryIO.getInstance();

  private final GuestMemFile file;
  private final GuestMemInodeImpl inode;
  private final long offset;
  private final long length;
  private final int prot;
  private final RawView raw;
  /** Where the accessors copy: the inode's guest view at this mapping's offset (lives as long as the inode). */
  private final long view;

  private HostMappingImpl(GuestMemFile file, GuestMemInodeImpl inode, long offset, long length, int prot, RawView raw, long guestView) {
    this.file = file;
    this.inode = inode;
    this.offset = offset;
    this.length = length;
    this.prot = prot;
    this.raw = raw;
    this.view = guestView + offset;
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
    inode.acquire();
    Lock lock = inode.invalidateLock().readLock();
    lock.lock();
    RawView raw = null;
    try {
      long guestView = inode.guestViewAddress();
      raw = RawView.map(inode, inaccessible, where, offset, length, prot, mapFlags);
      HostMappingImpl m = new HostMappingImpl(file, inode, offset, length, prot, raw, guestView);
      // mmap populates for MAP_LOCKED, and for MAP_POPULATE unless MAP_NONBLOCK.
      boolean locked = (mapFlags & MapFlags.LOCKED) != 0;
      boolean populate = locked || (mapFlags & (MapFlags.POPULATE | MapFlags.NONBLOCK)) == MapFlags.POPULATE;
      long firstPage = offset >>> Folio.PAGE_SHIFT;
      long endPage = Math.min(inode.nrPages(), (offset + length + Folio.PAGE_SIZE - 1) >>> Folio.PAGE_SHIFT);
      List<ShareabilityRange> faultable = new ArrayList<>();
      if (firstPage < endPage) {
        for (ShareabilityRange r : inode.shareabilityRanges(firstPage, endPage)) {
          if (inode.arch().hostMayFault(r.start(), r.shareability())) {
            faultable.add(r);
          }
        }
      }
      if (populate) {
        faultable.forEach(r -> m.allocate(r.start(), r.end())); // gmem's folios first, as a kernel fault allocates before it maps
      }
      // A fixed address is known to the caller already; MAP_LOCKED must fault in what the host may fault, and only that.
      if ((mapFlags & (MapFlags.FIXED | MapFlags.FIXED_NOREPLACE | MapFlags.LOCKED)) != 0) {
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
      inode.release();
      throw e;
    } finally {
      lock.unlock();
    }
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
    return raw.isOpen();
  }

  private void checkRange(long off, long len, int needProt) {
    if (!raw.isOpen()) {
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
   * Host-faults every page of {@code [off, off+len)} and returns where to copy: the inode's guest
   * view, so that shared pages of a huge page that also holds private ones, which the mapping
   * itself must cover, stay reachable. The caller holds the invalidate lock shared.
   */
  private long fault(long off, long len, boolean write) {
    long first = (offset + off) >>> Folio.PAGE_SHIFT;
    long last = (offset + off + Math.max(len, 1) - 1) >>> Folio.PAGE_SHIFT;
    for (long i = first; i <= last; i++) {
      inode.faults().hostFault(i, write);
    }
    raw.heal(first, last);
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
    raw.handOut();
    access(off, len, Prot.READ | (prot & Prot.WRITE), a -> {
      long first = (offset + off) >>> Folio.PAGE_SHIFT;
      long last = (offset + off + Math.max(len, 1) - 1) >>> Folio.PAGE_SHIFT;
      if (!raw.mapsAll(first, last)) {
        throw new GmemException(Errno.EFAULT, "[0x" + Long.toHexString(off) + ", +0x" + Integer.toHexString(len)
            + ") lies in a huge page that also holds pages the host may not fault: the mapping covers it whole; use the accessors");
      }
      return 0;
    });
    ByteBuffer b = Sys.buffer(raw.address() + off, len);
    return (prot & Prot.WRITE) != 0 ? b : b.asReadOnlyBuffer();
  }

  @Override
  public void close() {
    if (!raw.isOpen()) {
      return;
    }
    Lock l = inode.invalidateLock().readLock();
    l.lock();
    try {
      inode.removeMapping(this);
      raw.close();
    } finally {
      l.unlock();
    }
    inode.release();
  }
}
