package dev.gmem.core.inode;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.kenai.jffi.MemoryIO;
import dev.gmem.api.Fallocate;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.Prot;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.FilemapListener;
import dev.gmem.core.alloc.PageAllocator;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Mapping;
import dev.gmem.core.sys.Sys;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Punch frees in upstream's order ({@code kvm_gmem_punch_hole}: invalidate begin, truncate →
 * {@code ->free_folio} → {@code kvm_arch_gmem_invalidate}, and only then the page goes back):
 * the arch's invalidate and the filemap listeners run while the page still holds its contents,
 * so an arch that must leak a page (firmware still owns it) can keep it. The test reads the page
 * through its own mapping of the real memfd at each step: once the memory is freed it reads zero.
 */
class PunchOrderTest {
  private static final Sys SYS = Sys.load();
  private static final MemoryIO IO = MemoryIO.getInstance();
  static final long PAGE = 4096;
  static final long MAGIC = 0x5eC7e7_0000_0001L;

  @Test
  void invalidateThenListenersThenFree() {
    long size = 4 * PAGE;
    Fd memory = new Fd(SYS, SYS.memfdCreate("punch-order-test", Sys.MFD_CLOEXEC), "memfd");
    SYS.ftruncate(memory.get(), size);
    List<String> events = new ArrayList<>();
    try (Mapping probe = new Mapping(SYS, SYS.mmap(0, size, Prot.READ_WRITE, dev.gmem.api.MapFlags.SHARED, memory.get(), 0), size)) {
      ArchHooks arch = new ArchHooks() {
        @Override
        public void invalidate(long index, long nrPages) {
          events.add("invalidate " + index + " sees " + Long.toHexString(IO.getLong(probe.address() + index * PAGE)));
        }
      };
      FilemapListener listener = new FilemapListener() {
        @Override
        public void folioRemoved(long ino, long flags, long index, int order) {
          events.add("removed " + index + " sees " + Long.toHexString(IO.getLong(probe.address() + index * PAGE)));
        }
      };
      GuestMemInodeImpl inode = new GuestMemInodeImpl(
          1, size, GmemFlags.MMAP | GmemFlags.INIT_SHARED, SYS, memory, new PageAllocator().setupInode(size, 0), arch, List.of(listener), List.of(), true);
      try {
        inode.invalidateLock().readLock().lock();
        try {
          inode.faults().ensureFolio(2);
        } finally {
          inode.invalidateLock().readLock().unlock();
        }
        IO.putLong(probe.address() + 2 * PAGE, MAGIC);

        inode.holePunch().fallocate(Fallocate.KEEP_SIZE | Fallocate.PUNCH_HOLE, 0, size);

        String seen = Long.toHexString(MAGIC);
        assertEquals(List.of("invalidate 2 sees " + seen, "removed 2 sees " + seen), events,
            "the arch and then the listeners see the page before it is freed");
        assertEquals(0, IO.getLong(probe.address() + 2 * PAGE), "and then it is freed");
        assertEquals(0, inode.allocatedPages());
      } finally {
        inode.release();
      }
    }
  }

  /** A page the arch cannot take back (firmware still owns it) is leaked in its invalidate: its memory is kept. */
  @Test
  void aPageLeakedByTheInvalidateKeepsItsMemory() {
    long size = 4 * PAGE;
    Fd memory = new Fd(SYS, SYS.memfdCreate("punch-leak-test", Sys.MFD_CLOEXEC), "memfd");
    SYS.ftruncate(memory.get(), size);
    GuestMemInodeImpl[] self = new GuestMemInodeImpl[1];
    try (Mapping probe = new Mapping(SYS, SYS.mmap(0, size, Prot.READ_WRITE, dev.gmem.api.MapFlags.SHARED, memory.get(), 0), size)) {
      ArchHooks arch = new ArchHooks() {
        @Override
        public void invalidate(long index, long nrPages) {
          if (index == 1) {
            self[0].leak(index, nrPages);
          }
        }
      };
      GuestMemInodeImpl inode = new GuestMemInodeImpl(
          1, size, GmemFlags.MMAP | GmemFlags.INIT_SHARED, SYS, memory, new PageAllocator().setupInode(size, 0), arch, List.of(), List.of(), true);
      self[0] = inode;
      try {
        inode.invalidateLock().readLock().lock();
        try {
          inode.faults().ensureFolio(1);
          inode.faults().ensureFolio(2);
        } finally {
          inode.invalidateLock().readLock().unlock();
        }
        IO.putLong(probe.address() + PAGE, MAGIC);
        IO.putLong(probe.address() + 2 * PAGE, MAGIC);

        inode.holePunch().fallocate(Fallocate.KEEP_SIZE | Fallocate.PUNCH_HOLE, 0, size);

        assertEquals(MAGIC, IO.getLong(probe.address() + PAGE), "the leaked page keeps its memory");
        assertEquals(0, IO.getLong(probe.address() + 2 * PAGE), "the other one is freed");
        assertEquals(0, inode.allocatedPages());
      } finally {
        inode.release();
      }
    }
  }
}
