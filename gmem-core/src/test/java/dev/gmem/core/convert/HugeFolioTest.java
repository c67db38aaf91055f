package dev.gmem.core.convert;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.kenai.jffi.MemoryIO;
import dev.gmem.api.Errno;
import dev.gmem.api.Fallocate;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.Pin;
import dev.gmem.api.Shareability;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.core.inode.GuestMemInodeImpl;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Core's huge-folio rules, driven only by the allocator's folio order and split chain, on a fake
 * 16-page allocator that splits in stages (16 → 4 → 1 pages, as 1 GiB → 2 MiB → 4 KiB): staged
 * split and level-by-level merge, the mapping order, and punch (partial = zero, whole = merge
 * and free, EAGAIN when pinned).
 */
class HugeFolioTest {
  private static final MemoryIO IO = MemoryIO.getInstance();
  static final long PAGE = 4096;

  private static void fault(GuestMemInodeImpl inode, long index) {
    inode.invalidateLock().readLock().lock();
    try {
      inode.faults().ensureFolio(index);
    } finally {
      inode.invalidateLock().readLock().unlock();
    }
  }

  private static long count(List<Folio> folios, int order) {
    return folios.stream().filter(f -> f.order() == order).count();
  }

  @Test
  void onlyThePiecesHoldingSharedPagesSplitToFourKilobytesAndMergesGoLevelByLevel() {
    BlockAllocator a = new BlockAllocator(4, 2);
    try (TestInode t = new TestInode(32, false, TestInode.SW_PROTECTED, a)) {
      GuestMemInodeImpl inode = t.inode;
      fault(inode, 0);
      assertEquals(List.of(new Folio(0, 4, 0)), inode.folios(0, 16));
      assertEquals(4, inode.mappingOrder(3));

      assertEquals(1, inode.folioCount());
      assertEquals(4, inode.orderAt(15));
      assertEquals(-1, inode.orderAt(16), "no folio there yet");

      inode.convert(5 * PAGE, PAGE, Shareability.SHARED);
      List<Folio> folios = inode.folios(0, 16);
      assertEquals(7, inode.folioCount());
      assertEquals(0, inode.orderAt(5));
      assertEquals(3, count(folios, 2), "three 4-page pieces stay whole");
      assertEquals(4, count(folios, 0), "the piece holding the shared page is split");
      assertEquals(2, a.splits, "16 → 4, then 4 → 1 for one piece");
      assertEquals(2, inode.mappingOrder(0));
      assertEquals(0, inode.mappingOrder(4));

      inode.convert(9 * PAGE, PAGE, Shareability.SHARED);
      assertEquals(8, count(inode.folios(0, 16), 0));
      inode.convert(5 * PAGE, PAGE, Shareability.PRIVATE);
      assertEquals(3, count(inode.folios(0, 16), 2), "that piece is private again: merged to 4 pages");
      assertEquals(1, a.merges);
      inode.convert(9 * PAGE, PAGE, Shareability.PRIVATE);
      assertEquals(List.of(new Folio(0, 4, 0)), inode.folios(0, 16), "all private: merged straight to 16 pages");
      assertEquals(2, a.merges);
    }
  }

  @Test
  void aSharedFaultHandsTheBlockOutInNormalForm() {
    BlockAllocator a = new BlockAllocator(4, 2);
    try (TestInode t = new TestInode(16, false, TestInode.SW_PROTECTED, a)) {
      t.inode.convert(13 * PAGE, PAGE, Shareability.SHARED);
      fault(t.inode, 13);
      List<Folio> folios = t.inode.folios(0, 16);
      assertEquals(List.of(new Folio(0, 2, 0), new Folio(4, 2, 0), new Folio(8, 2, 0), new Folio(12, 0, 0)), folios.subList(0, 4));
      assertEquals(7, folios.size());
    }
  }

  @Test
  void theArchCapsTheMappingOrder() {
    ArchHooks capped = new ArchHooks() {
      @Override
      public boolean hasPrivateMemory() {
        return true;
      }

      @Override
      public int maxMappingOrder(GmemPage page, long gfn, boolean isPrivate) {
        return 2;
      }
    };
    try (TestInode t = new TestInode(16, false, capped, new BlockAllocator(4, 2))) {
      fault(t.inode, 0);
      assertEquals(List.of(new Folio(0, 4, 0)), t.inode.folios(0, 16));
      assertEquals(2, t.inode.mappingOrder(15), "a 16-page folio, mapped at most at 4 pages");
    }
  }

  @Test
  void punchZeroesPartialBlocksAndMergesThenFreesWholeOnesUnlessPinned() {
    BlockAllocator a = new BlockAllocator(4, 2);
    try (TestInode t = new TestInode(32, true, TestInode.SW_PROTECTED, a)) {
      GuestMemInodeImpl inode = t.inode;
      long view = inode.guestView().acquire(0, inode.nrPages()).address(0); // unmapped when the inode goes
      for (long p = 0; p < 32; p++) {
        fault(inode, p);
        IO.putLong(view + p * PAGE, p + 1);
      }
      inode.convert(0, 8 * PAGE, Shareability.PRIVATE);
      List<Folio> before = inode.folios(0, 32);

      inode.holePunch().fallocate(Fallocate.KEEP_SIZE | Fallocate.PUNCH_HOLE, 2 * PAGE, 12 * PAGE);
      assertEquals(before, inode.folios(0, 32), "partial blocks: no folio leaves");
      assertEquals(0, IO.getLong(view + 2 * PAGE));
      assertEquals(0, IO.getLong(view + 13 * PAGE));
      assertEquals(2, IO.getLong(view + PAGE));
      assertEquals(15, IO.getLong(view + 14 * PAGE));

      Pin pin = inode.pins().pin(20, 1);
      GmemException e = assertThrows(GmemException.class, () -> inode.holePunch().fallocate(Fallocate.KEEP_SIZE | Fallocate.PUNCH_HOLE, 8 * PAGE, 24 * PAGE));
      assertEquals(Errno.EAGAIN, e.errno());
      assertEquals(20 * PAGE, e.errorOffset().orElseThrow());
      assertEquals(17, IO.getLong(view + 16 * PAGE), "a refused punch leaves contents");
      assertEquals(32, inode.allocatedPages());
      pin.close();
      int merges = a.merges;
      inode.holePunch().fallocate(Fallocate.KEEP_SIZE | Fallocate.PUNCH_HOLE, 8 * PAGE, 24 * PAGE);
      assertEquals(merges + 1, a.merges, "the split block was merged before it was freed");
      assertArrayEquals(new long[] {16, 4}, a.freed.get(a.freed.size() - 1), "and freed as one folio");
      assertEquals(16, inode.allocatedPages());
      assertEquals(Shareability.SHARED, inode.shareability(20), "punch keeps shareability");
    }
  }
}
