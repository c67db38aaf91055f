package dev.gmem.core.vcpu;

import com.kenai.jffi.MemoryIO;
import dev.gmem.api.Folio;
import dev.gmem.api.Memslot;
import dev.gmem.api.MemoryExitException;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.core.file.GuestMemFileImpl;
import dev.gmem.core.inode.GuestMemInodeImpl;
import dev.gmem.core.memslot.MemslotTable;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Objects;
import java.util.concurrent.locks.Lock;

/**
 * The guest fault path in software: memslot → file → inode, under the inode's invalidate lock
 * taken shared, then {@link dev.gmem.core.inode.FaultPath#guestFault} for the shareability check, folio
 * allocation and the arch's prepare. Accesses never span pages: a multi-page access is split, and
 * the first page that exits stops it (earlier pages are done, as on hardware). Every access goes
 * through {@link #accessPage}.
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
    return accessBytes(gpa, dst, dstIndex, len, false, privateAccess);
  }

  @Override
  public VcpuExit write(long gpa, byte[] src, int srcIndex, int len, boolean privateAccess) {
    Objects.checkFromIndexSize(srcIndex, len, src.length);
    return accessBytes(gpa, src, srcIndex, len, true, privateAccess);
  }

  @Override
  public long readLong(long gpa, boolean privateAccess) {
    return accessLong(gpa, false, 0, privateAccess);
  }

  @Override
  public void writeLong(long gpa, long value, boolean privateAccess) {
    accessLong(gpa, true, value, privateAccess);
  }

  /** A multi-page access, one page at a time; the first page that exits stops it. */
  private VcpuExit accessBytes(long gpa, byte[] buf, int index, int len, boolean write, boolean privateAccess) {
    for (int done = 0; done < len; ) {
      long a = gpa + done;
      int chunk = (int) Math.min(len - done, Folio.PAGE_SIZE - (a & PAGE_MASK));
      int at = index + done;
      try {
        accessPage(a, chunk, write, privateAccess, 0, addr -> {
          if (write) {
            IO.putByteArray(addr, buf, at, chunk);
          } else {
            IO.getByteArray(addr, buf, at, chunk);
          }
          return 0;
        });
      } catch (MemoryExitException e) {
        return e.exit();
      }
      done += chunk;
    }
    return null;
  }

  /** 8 bytes: within a page, one page access; across pages, the multi-page way. */
  private long accessLong(long gpa, boolean write, long value, boolean privateAccess) {
    if ((gpa & PAGE_MASK) > Folio.PAGE_SIZE - Long.BYTES) {
      ByteBuffer b = ByteBuffer.allocate(Long.BYTES).order(ByteOrder.LITTLE_ENDIAN).putLong(0, value);
      VcpuExit e = accessBytes(gpa, b.array(), 0, Long.BYTES, write, privateAccess);
      if (e != null) {
        throw new MemoryExitException(e);
      }
      return write ? 0 : b.getLong(0);
    }
    if (write) {
      return accessPage(gpa, Long.BYTES, true, privateAccess, value, addr -> {
        IO.putLong(addr, value);
        return 0;
      });
    }
    return accessPage(gpa, Long.BYTES, false, privateAccess, 0, IO::getLong);
  }

  /** What an access does at the guest-view address of its bytes; returns the loaded value, or 0. */
  @FunctionalInterface
  private interface Copy {
    long at(long address);
  }

  /**
   * The one guest access path: {@code len} bytes at {@code gpa}, within one page. Memslot lookup
   * (none: an MMIO exit carrying {@code mmioData}), then, under the inode's invalidate lock taken
   * shared, the guest fault and {@code copy} at the page's address in the slot's window — the
   * memory behind its {@code userspace_addr}, which a real vCPU reaches too. Returns what
   * {@code copy} returned; an exit is thrown as {@link MemoryExitException}.
   */
  private long accessPage(long gpa, int len, boolean write, boolean privateAccess, long mmioData, Copy copy) {
    while (true) {
      MemslotTable.Binding b = memslots.binding(gpa);
      if (b == null) {
        throw new MemoryExitException(new VcpuExit.Mmio(gpa, write, len, mmioData));
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
        return copy.at(b.window().address(off));
      } finally {
        lock.unlock();
      }
    }
  }

  /**
   * The guest fault of an access whose own private bit is {@code accessBit}; its kind follows the
   * VM type's rule ({@link dev.gmem.core.inode.FaultPath#isPrivateAccess}).
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
  private static final int[] LEVELS = {Folio.PUD_ORDER, Folio.PMD_ORDER, 0};

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
}
