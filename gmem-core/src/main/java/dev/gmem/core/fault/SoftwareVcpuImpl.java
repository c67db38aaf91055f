package dev.gmem.core.fault;

import com.kenai.jffi.MemoryIO;
import dev.gmem.api.Folio;
import dev.gmem.api.Memslot;
import dev.gmem.api.MemoryExitException;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.core.file.GuestMemFileImpl;
import dev.gmem.core.inode.GuestMemInodeImpl;
import dev.gmem.core.memslot.MemslotTable;
import java.util.Objects;
import java.util.concurrent.locks.Lock;

/**
 * The guest fault path in software: memslot → file → inode, under the inode's invalidate lock
 * taken shared, then {@link dev.gmem.core.inode.FaultPath#guestFault} for the shareability check, folio
 * allocation and the arch's prepare. Accesses never span pages: a multi-page access is split, and
 * the first page that exits stops it (earlier pages are done, as on hardware).
 */
public final class SoftwareVcpuImpl implements SoftwareVcpu {
  private static final MemoryIO IO = MemoryIO.getInstance();
  private static final long PAGE_MASK = Folio.PAGE_SIZE - 1;

  private final MemslotTable memslots;

  public SoftwareVcpuImpl(MemslotTable memslots) {
    this.memslots = memslots;
  }

  @Override
  public VcpuExit read(long gpa, byte[] dst, int dstIndex, int len, boolean privateAccess) {
    Objects.checkFromIndexSize(dstIndex, len, dst.length);
    return access(gpa, dst, dstIndex, len, false, privateAccess);
  }

  @Override
  public VcpuExit write(long gpa, byte[] src, int srcIndex, int len, boolean privateAccess) {
    Objects.checkFromIndexSize(srcIndex, len, src.length);
    return access(gpa, src, srcIndex, len, true, privateAccess);
  }

  private VcpuExit access(long gpa, byte[] buf, int index, int len, boolean write, boolean privateAccess) {
    int done = 0;
    while (done < len) {
      long a = gpa + done;
      int chunk = (int) Math.min(len - done, Folio.PAGE_SIZE - (a & PAGE_MASK));
      MemslotTable.Binding b = memslots.binding(a);
      if (b == null) {
        return new VcpuExit.Mmio(a, write, chunk, 0);
      }
      Memslot slot = b.slot();
      GuestMemInodeImpl inode = ((GuestMemFileImpl) slot.file()).inodeImpl();
      long off = slot.fileOffset(a);
      Lock lock = inode.invalidateLock().readLock();
      lock.lock();
      try {
        if (!b.window().isOpen()) {
          continue; // the slot was deleted after the lookup: look again
        }
        VcpuExit exit = fault(slot, inode, a, off, write, privateAccess);
        if (exit != null) {
          return exit;
        }
        long addr = b.window().address(off);
        if (write) {
          IO.putByteArray(addr, buf, index + done, chunk);
        } else {
          IO.getByteArray(addr, buf, index + done, chunk);
        }
      } finally {
        lock.unlock();
      }
      done += chunk;
    }
    return null;
  }

  /**
   * The guest fault of an access whose own private bit is {@code accessBit}; its kind follows
   * the VM type's rule ({@link dev.gmem.core.inode.FaultPath#isPrivateAccess}).
   */
  private static VcpuExit fault(Memslot slot, GuestMemInodeImpl inode, long gpa, long off, boolean write, boolean accessBit) {
    long index = off >>> Folio.PAGE_SHIFT;
    if (!slot.file().isOpen()) {
      // The kernel clears slot->gmem.file on release: the guest fault finds no pfn.
      boolean privateAccess = inode.faults().isPrivateAccess(inode.shareabilityStore().get(index), accessBit);
      return memoryFault(gpa, privateAccess ? VcpuExit.MemoryFault.FLAG_PRIVATE : 0);
    }
    long flags = inode.faults().guestFault(index, gpa >>> Folio.PAGE_SHIFT, gpa, write, accessBit);
    return flags < 0 ? null : memoryFault(gpa, flags);
  }

  private static VcpuExit.MemoryFault memoryFault(long gpa, long flags) {
    return new VcpuExit.MemoryFault(flags, gpa & ~PAGE_MASK, Folio.PAGE_SIZE);
  }

  /** The page-table levels the MMU maps with (x86: 4 KiB, 2 MiB, 1 GiB), largest first. */
  private static final int[] LEVELS = {18, 9, 0};

  @Override
  public int mappingOrder(long gpa, boolean privateAccess) {
    Memslot slot = memslots.lookup(gpa);
    if (slot == null) {
      return -1;
    }
    GuestMemInodeImpl inode = ((GuestMemFileImpl) slot.file()).inodeImpl();
    long index = slot.fileOffset(gpa) >>> Folio.PAGE_SHIFT;
    long gfn = gpa >>> Folio.PAGE_SHIFT;
    boolean kind = inode.faults().isPrivateAccess(inode.shareabilityStore().get(index), privateAccess);
    int max = inode.faults().mappingOrder(index, gfn, kind);
    for (int level : LEVELS) {
      long n = 1L << level;
      long blockGpa = (gfn & -n) << Folio.PAGE_SHIFT;
      // disallow_lpage: the block must be aligned alike in GPA and file, and lie inside the slot.
      if (level <= max && ((gfn ^ index) & (n - 1)) == 0 && slot.containsGpa(blockGpa) && slot.containsGpa(blockGpa + (n << Folio.PAGE_SHIFT) - 1)) {
        return level;
      }
    }
    return 0;
  }

  @Override
  public long readLong(long gpa, boolean privateAccess) {
    return accessLong(gpa, false, 0, privateAccess);
  }

  @Override
  public void writeLong(long gpa, long value, boolean privateAccess) {
    accessLong(gpa, true, value, privateAccess);
  }

  /**
   * The 8-byte fast path: one page, one lookup, no buffer. An access crossing a page goes the
   * general way. Returns the loaded value (0 for a store); an exit is thrown.
   */
  private long accessLong(long gpa, boolean write, long value, boolean privateAccess) {
    if ((gpa & PAGE_MASK) > Folio.PAGE_SIZE - 8) {
      java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(8).order(java.nio.ByteOrder.LITTLE_ENDIAN).putLong(0, value);
      VcpuExit e = access(gpa, b.array(), 0, 8, write, privateAccess);
      if (e != null) {
        throw new MemoryExitException(e);
      }
      return write ? 0 : b.getLong(0);
    }
    while (true) {
      MemslotTable.Binding b = memslots.binding(gpa);
      if (b == null) {
        throw new MemoryExitException(new VcpuExit.Mmio(gpa, write, 8, write ? value : 0));
      }
      Memslot slot = b.slot();
      GuestMemInodeImpl inode = ((GuestMemFileImpl) slot.file()).inodeImpl();
      long off = slot.fileOffset(gpa);
      Lock lock = inode.invalidateLock().readLock();
      lock.lock();
      try {
        if (!b.window().isOpen()) {
          continue; // the slot was deleted after the lookup: look again
        }
        VcpuExit exit = fault(slot, inode, gpa, off, write, privateAccess);
        if (exit != null) {
          throw new MemoryExitException(exit);
        }
        long addr = b.window().address(off);
        if (write) {
          IO.putLong(addr, value);
          return 0;
        }
        return IO.getLong(addr);
      } finally {
        lock.unlock();
      }
    }
  }
}
