package dev.gmem.core.inode;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.mockito.ArgumentMatchers.any;
import static org.mockito.ArgumentMatchers.anyInt;
import static org.mockito.ArgumentMatchers.anyLong;
import static org.mockito.ArgumentMatchers.eq;
import static org.mockito.Mockito.CALLS_REAL_METHODS;
import static org.mockito.Mockito.doReturn;
import static org.mockito.Mockito.mock;
import static org.mockito.Mockito.never;
import static org.mockito.Mockito.times;
import static org.mockito.Mockito.verify;
import static org.mockito.Mockito.withSettings;

import dev.gmem.api.Fallocate;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.core.alloc.PageAllocator;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Sys;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.locks.Lock;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * {@code kvm_arch_gmem_prepare} runs once per folio, on the first private guest fault, however
 * often and from however many threads the folio is faulted; shared faults never prepare; a punched
 * folio is invalidated and prepared afresh on its next private fault. The inode runs on real memory
 * (a memfd) with core's page allocator; Mockito only records the arch calls.
 */
class ArchPrepareTest {
  static final long PAGE = 4096;
  static final long PAGES = 8;
  /** The GPA frame of page 0: the file is bound at GPA 4 GiB. */
  static final long BASE_GFN = (1L << 32) >>> 12;
  private static final Sys SYS = Sys.load();

  /** A VM with private memory, SW_PROTECTED-like: the access kind is the page's. */
  private final ArchHooks arch = privateMemory(mock(ArchHooks.class, withSettings().defaultAnswer(CALLS_REAL_METHODS)));

  private static ArchHooks privateMemory(ArchHooks hooks) {
    doReturn(true).when(hooks).hasPrivateMemory();
    doReturn(true).when(hooks).supportsInitShared();
    return hooks;
  }
  private final List<GuestMemInodeImpl> inodes = new ArrayList<>();

  private GuestMemInodeImpl inode(long flags) {
    long size = PAGES * PAGE;
    Fd memory = new Fd(SYS, SYS.memfdCreate("arch-prepare-test", Sys.MFD_CLOEXEC), "memfd");
    SYS.ftruncate(memory.get(), size);
    GuestMemInodeImpl inode = new GuestMemInodeImpl(
        inodes.size() + 1, size, flags, SYS, memory, new PageAllocator().setupInode(size, flags), arch, List.of(), List.of(), true);
    inodes.add(inode);
    return inode;
  }

  @AfterEach
  void release() {
    for (GuestMemInodeImpl inode : inodes) {
      inode.release();
    }
  }

  /** A guest fault as the software vCPU takes it: under the invalidate lock, shared. */
  private static long fault(GuestMemInodeImpl inode, long index, boolean write, boolean privateAccess) {
    Lock lock = inode.invalidateLock().readLock();
    lock.lock();
    try {
      long gfn = BASE_GFN + index;
      return inode.faults().guestFault(index, gfn, gfn << 12, write, privateAccess);
    } finally {
      lock.unlock();
    }
  }

  @Test
  void repeatedPrivateFaultsPrepareEachFolioOnce() {
    GuestMemInodeImpl inode = inode(GmemFlags.MMAP);
    for (int round = 0; round < 10; round++) {
      for (long i = 0; i < 4; i++) {
        assertEquals(-1, fault(inode, i, round % 2 == 0, true));
      }
    }
    for (long i = 0; i < 4; i++) {
      verify(arch, times(1)).prepare(new GmemPage(inode.ino(), i), BASE_GFN + i, 0);
    }
    verify(arch, times(4)).prepare(any(GmemPage.class), anyLong(), anyInt());
    assertEquals(4, inode.allocatedPages());
  }

  @Test
  void concurrentPrivateFaultsPrepareEachFolioOnce() throws Exception {
    GuestMemInodeImpl inode = inode(GmemFlags.MMAP);
    int threads = 8;
    CyclicBarrier start = new CyclicBarrier(threads);
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    try {
      List<Future<Integer>> results = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        int self = t;
        results.add(pool.submit(() -> {
          start.await();
          int ok = 0;
          for (int round = 0; round < 50; round++) {
            for (long k = 0; k < PAGES; k++) {
              long index = (k + self) % PAGES; // every thread starts on a different page
              if (fault(inode, index, (round & 1) == 0, true) == -1) {
                ok++;
              }
            }
          }
          return ok;
        }));
      }
      for (Future<Integer> r : results) {
        assertEquals(50 * PAGES, (long) r.get(), "every private fault on a private page succeeds");
      }
    } finally {
      pool.shutdownNow();
    }
    for (long i = 0; i < PAGES; i++) {
      verify(arch, times(1)).prepare(new GmemPage(inode.ino(), i), BASE_GFN + i, 0);
    }
    verify(arch, times((int) PAGES)).prepare(any(GmemPage.class), anyLong(), anyInt());
  }

  /** Where accesses carry their own private bit (TDX, SNP), a kind that disagrees with the page exits. */
  @Test
  void sharedFaultsAndRefusedFaultsNeverPrepare() {
    doReturn(true).when(arch).privateBitInAccess();
    GuestMemInodeImpl shared = inode(GmemFlags.MMAP | GmemFlags.INIT_SHARED);
    GuestMemInodeImpl priv = inode(GmemFlags.MMAP);
    for (long i = 0; i < PAGES; i++) {
      assertEquals(-1, fault(shared, i, true, false), "shared access to a shared page");
      assertEquals(-1, fault(shared, i, false, false));
      assertEquals(VcpuExit.MemoryFault.FLAG_PRIVATE, fault(shared, i, true, true), "private access to a shared page");
      assertEquals(0, fault(priv, i, false, false), "shared access to a private page");
    }
    verify(arch, never()).prepare(any(GmemPage.class), anyLong(), anyInt());
    assertEquals(PAGES, shared.allocatedPages());
    assertEquals(0, priv.allocatedPages(), "refused faults allocate nothing");
  }

  /** SW_PROTECTED: the page decides the kind, whatever the access's bit; only private pages prepare. */
  @Test
  void attributesDecideTheKindAndOnlyPrivatePagesPrepare() {
    GuestMemInodeImpl shared = inode(GmemFlags.MMAP | GmemFlags.INIT_SHARED);
    GuestMemInodeImpl priv = inode(GmemFlags.MMAP);
    for (long i = 0; i < PAGES; i++) {
      assertEquals(-1, fault(shared, i, true, true), "the private bit on a shared page: a shared access");
      assertEquals(-1, fault(priv, i, false, false), "no private bit on a private page: a private access");
    }
    verify(arch, times((int) PAGES)).prepare(anyLong(), anyLong(), anyInt());
    for (long i = 0; i < PAGES; i++) {
      verify(arch).prepare(BASE_GFN + i, i, 0);
    }
  }

  @Test
  void punchedFolioIsInvalidatedAndPreparedAgain() {
    GuestMemInodeImpl inode = inode(GmemFlags.MMAP);
    assertEquals(-1, fault(inode, 1, true, true));
    assertEquals(-1, fault(inode, 2, true, true));
    verify(arch, times(1)).prepare(new GmemPage(inode.ino(), 1), BASE_GFN + 1, 0);

    inode.holePunch().fallocate(Fallocate.KEEP_SIZE | Fallocate.PUNCH_HOLE, PAGE, PAGE);
    verify(arch, times(1)).invalidate(new GmemPage(inode.ino(), 1), 1);
    verify(arch, never()).invalidate(eq(new GmemPage(inode.ino(), 2)), anyLong());
    assertEquals(1, inode.allocatedPages());

    assertEquals(-1, fault(inode, 1, false, true));
    assertEquals(-1, fault(inode, 1, true, true));
    assertEquals(-1, fault(inode, 2, false, true));
    verify(arch, times(2)).prepare(new GmemPage(inode.ino(), 1), BASE_GFN + 1, 0);
    verify(arch, times(1)).prepare(new GmemPage(inode.ino(), 2), BASE_GFN + 2, 0);
  }

  /** A DEFAULT VM has no private memory: the access's own bit is ignored, every fault is shared, nothing is prepared. */
  @Test
  void defaultVmNeverPreparesAndNeverExits() {
    ArchHooks defaults = mock(ArchHooks.class, withSettings().defaultAnswer(CALLS_REAL_METHODS));
    GuestMemInodeImpl inode = new GuestMemInodeImpl(99, PAGES * PAGE, GmemFlags.MMAP, SYS, memfd(PAGES * PAGE),
        new PageAllocator().setupInode(PAGES * PAGE, GmemFlags.MMAP), defaults, List.of(), List.of(), true);
    inodes.add(inode);
    for (long i = 0; i < PAGES; i++) {
      assertEquals(-1, fault(inode, i, true, true), "private bit on a DEFAULT VM");
      assertEquals(-1, fault(inode, i, false, false));
    }
    verify(defaults, never()).prepare(anyLong(), anyLong(), anyInt());
    assertEquals(PAGES, inode.allocatedPages());
  }

  private static Fd memfd(long size) {
    Fd memory = new Fd(SYS, SYS.memfdCreate("arch-prepare-test", Sys.MFD_CLOEXEC), "memfd");
    SYS.ftruncate(memory.get(), size);
    return memory;
  }
}
