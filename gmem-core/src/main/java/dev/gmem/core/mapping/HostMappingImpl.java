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
import dev.gmem.core.inode.InodeMapping;
import dev.gmem.core.shareability.ShareabilityStore;
import dev.gmem.core.sys.Mapping;
import dev.gmem.core.sys.Sys;
import java.nio.ByteBuffer;
import java.util.concurrent.locks.Lock;

/**
 * A host mapping of a file range. Pages the host may not fault are covered by a mapping of an
 * empty memfd ({@link InaccessibleMemory}): any access to them raises SIGBUS, exactly as the
 * kernel does for a private guest_memfd page (and, unlike PROT_NONE, the JVM survives a SIGBUS in
 * an unsafe access). gmem's accessors check shareability under the inode's invalidate lock first,
 * so through them the host gets a {@link GmemException} instead.
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
  /** Per mapped page: SHARED = the file is mapped there, PRIVATE = the SIGBUS memory is. */
  private final ShareabilityStore mapped;

  private HostMappingImpl(
      GuestMemFile file, GuestMemInodeImpl inode, InaccessibleMemory inaccessible, long offset, long length, int prot, Mapping mapping) {
    this.file = file;
    this.inode = inode;
    this.inaccessible = inaccessible;
    this.sys = inode.sys();
    this.offset = offset;
    this.length = length;
    this.prot = prot;
    this.mapping = mapping;
    this.firstPage = offset >>> Folio.PAGE_SHIFT;
    this.mapped = new ShareabilityStore((length + Folio.PAGE_SIZE - 1) >>> Folio.PAGE_SHIFT, Shareability.SHARED);
  }

  /** Maps after the file layer validated the arguments; registers with the inode. */
  public static HostMappingImpl create(
      GuestMemFile file, GuestMemInodeImpl inode, InaccessibleMemory inaccessible, long offset, long length, int prot, int mapFlags) {
    Sys sys = inode.sys();
    inode.acquire();
    Lock lock = inode.invalidateLock().readLock();
    lock.lock();
    HostMappingImpl m = null;
    try {
      long addr = sys.mmap(0, length, prot, Prot.MAP_SHARED | (mapFlags & Prot.MAP_LOCKED), inode.memory().get(), offset);
      m = new HostMappingImpl(file, inode, inaccessible, offset, length, prot, new Mapping(sys, addr, length));
      long firstPage = offset >>> Folio.PAGE_SHIFT;
      long endPage = Math.min(inode.nrPages(), (offset + length) >>> Folio.PAGE_SHIFT);
      if (firstPage < endPage) {
        for (ShareabilityRange r : inode.shareabilityRanges(firstPage, endPage)) {
          if (!inode.arch().hostMayFault(r.start(), r.shareability())) {
            m.setAccessible(r.start(), r.end(), false);
          } else if ((mapFlags & Prot.MAP_POPULATE) != 0) {
            m.populate(r.start(), r.end());
          }
        }
      }
      inode.addMapping(m);
      return m;
    } catch (RuntimeException e) {
      if (m != null) {
        m.mapping.close();
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
      inode.ensureFolio(i);
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
   * maps a page only when it is touched.
   */
  @Override
  public synchronized void setAccessible(long startPage, long endPage, boolean accessible) {
    long first = Math.max(startPage, firstPage);
    long end = Math.min(endPage, (offset + length) >>> Folio.PAGE_SHIFT);
    if (first >= end || !mapping.isOpen()) {
      return;
    }
    long rel = (first << Folio.PAGE_SHIFT) - offset;
    long len = (end - first) << Folio.PAGE_SHIFT;
    int flags = Prot.MAP_SHARED | Prot.MAP_FIXED;
    if (accessible) {
      sys.mmap(mapping.address() + rel, len, prot, flags, inode.memory().get(), first << Folio.PAGE_SHIFT);
    } else {
      sys.mmap(mapping.address() + rel, len, prot, flags, inaccessible.fd(), 0);
    }
    mapped.set(first - firstPage, end - firstPage, accessible ? Shareability.SHARED : Shareability.PRIVATE);
  }

  /** Pages healed per fault at most: one 2 MiB block, so a fault's work is bounded. */
  private static final long HEAL_BLOCK = 512;

  /** The host may fault {@code page} but it is still covered by SIGBUS memory: map its shared run. */
  private void heal(long page) {
    long blockStart = Math.max(firstPage, page & ~(HEAL_BLOCK - 1));
    long blockEnd = Math.min(Math.min(inode.nrPages(), (offset + length) >>> Folio.PAGE_SHIFT), blockStart + HEAL_BLOCK);
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

  /** Host-faults every page of {@code [off, off+len)}; the caller holds the invalidate lock shared. */
  private void fault(long off, long len, boolean write) {
    long first = (offset + off) >>> Folio.PAGE_SHIFT;
    long last = (offset + off + Math.max(len, 1) - 1) >>> Folio.PAGE_SHIFT;
    for (long i = first; i <= last; i++) {
      inode.hostFault(i, write);
    }
    for (long i = first; i <= last; i++) {
      if (mapped.get(i - firstPage) != Shareability.SHARED) {
        heal(i);
      }
    }
  }

  @Override
  public byte getByte(long off) {
    checkRange(off, 1, Prot.READ);
    Lock l = inode.invalidateLock().readLock();
    l.lock();
    try {
      fault(off, 1, false);
      return IO.getByte(mapping.address() + off);
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
      fault(off, 1, true);
      IO.putByte(mapping.address() + off, value);
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
      fault(off, 8, false);
      return IO.getLong(mapping.address() + off);
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
      fault(off, 8, true);
      IO.putLong(mapping.address() + off, value);
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
      fault(off, len, false);
      IO.getByteArray(mapping.address() + off, dst, dstIndex, len);
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
      fault(off, len, true);
      IO.putByteArray(mapping.address() + off, src, srcIndex, len);
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
      fault(off, len, true);
      IO.setMemory(mapping.address() + off, len, value);
    } finally {
      l.unlock();
    }
  }

  @Override
  public ByteBuffer buffer(long off, int len) {
    checkRange(off, len, Prot.READ);
    Lock l = inode.invalidateLock().readLock();
    l.lock();
    try {
      fault(off, len, (prot & Prot.WRITE) != 0);
      ByteBuffer b = Sys.buffer(mapping.address() + off, len);
      return (prot & Prot.WRITE) != 0 ? b : b.asReadOnlyBuffer();
    } finally {
      l.unlock();
    }
  }

  @Override
  public void close() {
    if (!mapping.isOpen()) {
      return;
    }
    Lock l = inode.invalidateLock().readLock();
    l.lock();
    try {
      inode.removeMapping(this);
      mapping.close();
    } finally {
      l.unlock();
    }
    inode.release();
  }
}
