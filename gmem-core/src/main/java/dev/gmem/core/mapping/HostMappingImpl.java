package dev.gmem.core.mapping;

import com.kenai.jffi.MemoryIO;
import dev.gmem.api.Errno;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
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
import java.util.concurrent.locks.Lock;

/**
 * A host mapping of a file range. gmem's accessors check shareability under the inode's
 * invalidate lock and copy through the inode's guest view, so through them the host gets a
 * {@link GmemException} for a page it may not fault. The mapping's own memory is the raw view
 * ({@link #address}, {@link #buffer}), kept by {@link RawView}: pages the host may not fault are
 * covered there by SIGBUS memory once the raw view has been handed out.
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

  /** Maps after the file layer validated the arguments; registers with the inode. */
  public static HostMappingImpl create(
      GuestMemFile file, GuestMemInodeImpl inode, InaccessibleMemory inaccessible, long offset, long length, int prot, int mapFlags) {
    inode.acquire();
    Lock lock = inode.invalidateLock().readLock();
    lock.lock();
    RawView raw = null;
    try {
      long guestView = inode.guestViewAddress();
      raw = RawView.map(inode, inaccessible, offset, length, prot, mapFlags);
      HostMappingImpl m = new HostMappingImpl(file, inode, offset, length, prot, raw, guestView);
      long firstPage = offset >>> Folio.PAGE_SHIFT;
      long endPage = Math.min(inode.nrPages(), (offset + length) >>> Folio.PAGE_SHIFT);
      if (firstPage < endPage && (mapFlags & Prot.MAP_POPULATE) != 0) {
        for (ShareabilityRange r : inode.shareabilityRanges(firstPage, endPage)) {
          if (inode.arch().hostMayFault(r.start(), r.shareability())) {
            m.populate(r.start(), r.end());
          }
        }
      }
      inode.addMapping(m);
      return m;
    } catch (RuntimeException e) {
      if (raw != null) {
        raw.close();
      }
      inode.release();
      throw e;
    } finally {
      lock.unlock();
    }
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

  @Override
  public byte getByte(long off) {
    checkRange(off, 1, Prot.READ);
    Lock l = inode.invalidateLock().readLock();
    l.lock();
    try {
      return IO.getByte(fault(off, 1, false));
    } finally {
      l.unlock();
    }
  }

  @Override
  public void putByte(long off, byte value) {
    checkRange(off, 1, Prot.WRITE);
    Lock l = inode.invalidateLock().readLock();
    l.lock();
    try {
      IO.putByte(fault(off, 1, true), value);
    } finally {
      l.unlock();
    }
  }

  @Override
  public long getLong(long off) {
    checkRange(off, 8, Prot.READ);
    Lock l = inode.invalidateLock().readLock();
    l.lock();
    try {
      return IO.getLong(fault(off, 8, false));
    } finally {
      l.unlock();
    }
  }

  @Override
  public void putLong(long off, long value) {
    checkRange(off, 8, Prot.WRITE);
    Lock l = inode.invalidateLock().readLock();
    l.lock();
    try {
      IO.putLong(fault(off, 8, true), value);
    } finally {
      l.unlock();
    }
  }

  @Override
  public void read(long off, byte[] dst, int dstIndex, int len) {
    java.util.Objects.checkFromIndexSize(dstIndex, len, dst.length);
    checkRange(off, len, Prot.READ);
    Lock l = inode.invalidateLock().readLock();
    l.lock();
    try {
      IO.getByteArray(fault(off, len, false), dst, dstIndex, len);
    } finally {
      l.unlock();
    }
  }

  @Override
  public void write(long off, byte[] src, int srcIndex, int len) {
    java.util.Objects.checkFromIndexSize(srcIndex, len, src.length);
    checkRange(off, len, Prot.WRITE);
    Lock l = inode.invalidateLock().readLock();
    l.lock();
    try {
      IO.putByteArray(fault(off, len, true), src, srcIndex, len);
    } finally {
      l.unlock();
    }
  }

  @Override
  public void fill(long off, long len, byte value) {
    checkRange(off, len, Prot.WRITE);
    Lock l = inode.invalidateLock().readLock();
    l.lock();
    try {
      IO.setMemory(fault(off, len, true), len, value);
    } finally {
      l.unlock();
    }
  }

  @Override
  public ByteBuffer buffer(long off, int len) {
    checkRange(off, len, Prot.READ);
    raw.handOut();
    Lock l = inode.invalidateLock().readLock();
    l.lock();
    try {
      fault(off, len, (prot & Prot.WRITE) != 0);
      long first = (offset + off) >>> Folio.PAGE_SHIFT;
      long last = (offset + off + Math.max(len, 1) - 1) >>> Folio.PAGE_SHIFT;
      if (!raw.mapsAll(first, last)) {
        throw new GmemException(Errno.EFAULT, "[0x" + Long.toHexString(off) + ", +0x" + Integer.toHexString(len)
            + ") lies in a huge page that also holds pages the host may not fault: the mapping covers it whole; use the accessors");
      }
      ByteBuffer b = Sys.buffer(raw.address() + off, len);
      return (prot & Prot.WRITE) != 0 ? b : b.asReadOnlyBuffer();
    } finally {
      l.unlock();
    }
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
