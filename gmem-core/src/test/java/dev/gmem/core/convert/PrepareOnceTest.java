package dev.gmem.core.convert;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.Shareability;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.core.alloc.PageAllocator;
import dev.gmem.core.inode.GuestMemInodeImpl;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Lock;
import org.junit.jupiter.api.Test;

/**
 * {@code kvm_arch_gmem_prepare} runs exactly once per page, also when a huge folio is merged
 * from parts of which only some were prepared (the others were shared in between), and the
 * first private faults of different folios do not wait for each other's prepare.
 */
class PrepareOnceTest {
  static final long PAGE = 4096;
  static final long BASE_GFN = 0x100000;

  /** A VM with private memory whose prepare and invalidate record what they were asked. */
  static final class RecordingArch implements ArchHooks {
    final List<String> calls = new CopyOnWriteArrayList<>();

    @Override
    public boolean hasPrivateMemory() {
      return true;
    }

    @Override
    public boolean supportsInitShared() {
      return true;
    }

    @Override
    public void prepare(GmemPage first, long gfn, int order) {
      calls.add("prepare gfn " + Long.toHexString(gfn) + " page " + first.index() + " order " + order);
    }

    @Override
    public void invalidate(GmemPage first, long nrPages) {
      calls.add("invalidate page " + first.index() + " x" + nrPages);
    }
  }

  /** A private guest access to page {@code index}, as the software vCPU makes it; -1 when it proceeds. */
  static long privateFault(GuestMemInodeImpl inode, long index) {
    Lock lock = inode.invalidateLock().readLock();
    lock.lock();
    try {
      long gfn = BASE_GFN + index;
      return inode.faults().guestFault(index, gfn, gfn * PAGE, true, true);
    } finally {
      lock.unlock();
    }
  }

  @Test
  void mergedFolioPreparesOnlyThePagesThatWereNot() {
    RecordingArch arch = new RecordingArch();
    try (TestInode t = new TestInode(512, GmemFlags.MMAP, arch, new BlockAllocator(9))) {
      GuestMemInodeImpl inode = t.inode;
      assertEquals(-1, privateFault(inode, 0));
      assertEquals(List.of("prepare gfn 100000 page 0 order 9"), arch.calls);

      inode.convert(5 * PAGE, PAGE, Shareability.SHARED); // split; page 5 leaves private use
      assertEquals("invalidate page 5 x1", arch.calls.get(1));
      inode.convert(5 * PAGE, PAGE, Shareability.PRIVATE); // merged again: 511 prepared pages and one not
      assertEquals(9, inode.filemap().orderAt(0));

      assertEquals(-1, privateFault(inode, 0));
      assertEquals(-1, privateFault(inode, 5));
      assertEquals(List.of("prepare gfn 100000 page 0 order 9", "invalidate page 5 x1", "prepare gfn 100005 page 5 order 0"), arch.calls,
          "only the page that was not prepared is prepared, once");
    }
  }

  @Test
  void firstFaultsOfDifferentFoliosPrepareConcurrently() throws Exception {
    CountDownLatch firstEntered = new CountDownLatch(1);
    CountDownLatch secondEntered = new CountDownLatch(1);
    ArchHooks arch = new ArchHooks() {
      @Override
      public boolean hasPrivateMemory() {
        return true;
      }

      @Override
      public void prepare(long gfn, long index, int order) {
        if (index == 1) {
          secondEntered.countDown();
          return;
        }
        firstEntered.countDown();
        try {
          // Firmware work on folio 0 is slow; folio 1's prepare must not queue behind it.
          assertTrue(secondEntered.await(30, TimeUnit.SECONDS), "prepare of folio 1 waited for folio 0's");
        } catch (InterruptedException e) {
          throw new IllegalStateException(e);
        }
      }
    };
    ExecutorService pool = Executors.newFixedThreadPool(2);
    try (TestInode t = new TestInode(4, GmemFlags.MMAP, arch, new PageAllocator())) {
      Future<Long> first = pool.submit(() -> privateFault(t.inode, 0));
      firstEntered.await();
      Future<Long> second = pool.submit(() -> privateFault(t.inode, 1));
      assertEquals(-1L, (long) second.get());
      assertEquals(-1L, (long) first.get());
    } finally {
      pool.shutdownNow();
    }
  }
}
