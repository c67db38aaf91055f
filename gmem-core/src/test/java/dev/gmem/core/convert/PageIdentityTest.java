package dev.gmem.core.convert;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import dev.gmem.api.Fallocate;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.Shareability;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.ArchContext;
import dev.gmem.api.spi.FilemapListener;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.core.inode.GuestMemInodeImpl;
import dev.gmem.core.spi.FixtureArch;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Sys;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.locks.Lock;
import org.junit.jupiter.api.Test;

/**
 * One arch instance serves every inode of a VM, so its per-page state must be keyed by page
 * identity: the same index of two inodes are two pages. The fixture arch answers
 * {@code maxMappingOrder} from its own entries (as SNP from the RMP entry size); filemap listeners
 * hear of the splits and merges that conversion makes.
 */
class PageIdentityTest {
  static final long PAGE = 4096;
  private static final Sys SYS = TestInode.SYS;

  private static final ArchContext NO_CONTEXT = new ArchContext() {
    @Override
    public VmType vmType() {
      return VmType.SW_PROTECTED;
    }

    @Override
    public void leak(GmemPage first, long nrPages, String reason) {
      throw new AssertionError("no leak expected");
    }

    @Override
    public void bug(String reason) {
      throw new AssertionError("no KVM_BUG_ON expected");
    }

    @Override
    public boolean isDead() {
      return false;
    }
  };

  private static GuestMemInodeImpl inode(long ino, FixtureArch arch, List<FilemapListener> listeners) {
    long size = 8 * PAGE;
    Fd memory = new Fd(SYS, SYS.memfdCreate("page-identity-test", Sys.MFD_CLOEXEC), "memfd");
    SYS.ftruncate(memory.get(), size);
    return new GuestMemInodeImpl(ino, size, GmemFlags.MMAP, SYS, memory, new BlockAllocator(2).setupInode(size, GmemFlags.MMAP), arch,
        listeners, List.of(), true);
  }

  private static void privateFault(GuestMemInodeImpl inode, long index) {
    Lock l = inode.invalidateLock().readLock();
    l.lock();
    try {
      assertEquals(-1, inode.faults().guestFault(index, index, index * PAGE, true, true));
    } finally {
      l.unlock();
    }
  }

  @Test
  void theSameIndexOfTwoInodesIsTwoPagesToTheArch() {
    FixtureArch arch = new FixtureArch(NO_CONTEXT);
    GuestMemInodeImpl a = inode(1, arch, List.of());
    GuestMemInodeImpl b = inode(2, arch, List.of());
    try {
      privateFault(a, 1); // prepares a's 4-page folio at index 0
      b.holePunch().fallocate(Fallocate.KEEP_SIZE, 0, 4 * PAGE); // b's folio is present but never prepared

      assertEquals(new FixtureArch.Entry(1 - 1, 2), arch.entry(new GmemPage(1, 0)));
      assertNull(arch.entry(new GmemPage(2, 0)), "b's page 0 is another page");
      assertEquals(2, a.mappingOrder(0), "a's page maps at the size the firmware assigned");
      assertEquals(0, b.mappingOrder(0), "b's page, same index, same folio order, has no firmware entry: 4 KiB");
    } finally {
      a.release();
      b.release();
    }
  }

  @Test
  void listenersHearTheSplitsAndMergesOfConversion() {
    List<String> events = new ArrayList<>();
    FilemapListener recorder = new FilemapListener() {
      @Override
      public void folioSplit(long ino, long flags, long index, int order, int newOrder) {
        events.add("split " + index + " " + order + "->" + newOrder);
      }

      @Override
      public void folioMerged(long ino, long flags, long index, int order) {
        events.add("merge " + index + " " + order);
      }
    };
    GuestMemInodeImpl a = inode(1, new FixtureArch(NO_CONTEXT), List.of(recorder));
    try {
      privateFault(a, 0);
      a.convert(PAGE, PAGE, Shareability.SHARED);
      assertEquals(List.of("split 0 2->0"), events);
      a.convert(PAGE, PAGE, Shareability.PRIVATE);
      assertEquals(List.of("split 0 2->0", "merge 0 2"), events);
    } finally {
      a.release();
    }
  }
}
