package dev.gmem.core.inode;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Fallocate;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.FolioAllocator;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Sys;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.Lock;
import org.junit.jupiter.api.Test;

/**
 * Two first faults race for one order-0 page (upstream: both allocate, {@code filemap_add_folio}
 * lets one win, the loser puts <em>its own</em> folio). The allocator here hands out a distinct
 * folio per allocation, as any allocator with real memory behind it does, and records which one it
 * holds for each index. The loser must free its own folio, never the winner's.
 *
 * <p>The allocator is a dynamic proxy of the SPI, so that this file also runs against the SPI
 * before folio handles existed (where the loser could only say {@code freeFolio(index)}, and freed
 * the winner's folio).
 */
class AllocationRaceTest {
  private static final Sys SYS = Sys.load();
  static final long PAGE = 4096;

  /** Folios by identity: live ones, the one held for each index, in allocation order. */
  static final class Folios {
    final Set<Integer> live = ConcurrentHashMap.newKeySet();
    final Map<Long, Integer> held = new ConcurrentHashMap<>();
    final List<Integer> allocated = new CopyOnWriteArrayList<>();
    final List<String> errors = new CopyOnWriteArrayList<>();
    final AtomicInteger next = new AtomicInteger(1);
    final CountDownLatch loserInside = new CountDownLatch(1);
    final CountDownLatch winnerDone = new CountDownLatch(1);

    int take() {
      int id = next.getAndIncrement();
      live.add(id);
      allocated.add(id);
      return id;
    }

    /** The first to allocate is held back inside the allocator until the second has won the page. */
    void gate(int id) {
      if (id == 1) {
        loserInside.countDown();
        await(winnerDone);
      }
    }

    void free(int id) {
      if (!live.remove(id)) {
        errors.add("folio " + id + " freed twice");
      }
    }

    void freeIndex(long index) {
      Integer id = held.remove(index);
      if (id == null) {
        errors.add("freeFolio(" + index + ") but no folio is held there");
      } else {
        free(id);
      }
    }
  }

  static void await(CountDownLatch l) {
    try {
      l.await();
    } catch (InterruptedException e) {
      throw new IllegalStateException(e);
    }
  }

  /** The SPI inode over {@link Folios}, answering whichever allocation calls the SPI has. */
  static FolioAllocator.Inode allocator(Folios folios) {
    return (FolioAllocator.Inode) Proxy.newProxyInstance(AllocationRaceTest.class.getClassLoader(), new Class<?>[] {FolioAllocator.Inode.class},
        (proxy, m, args) -> {
          switch (m.getName()) {
            case "folioOrder":
            case "splitOrder":
              return 0;
            case "allocFolio": {
              int id = folios.take();
              folios.held.put((Long) args[0], id); // an index-keyed allocator knows no better
              folios.gate(id);
              return null;
            }
            case "freeFolio":
              folios.freeIndex((Long) args[0]);
              return null;
            case "allocate": {
              int id = folios.take();
              folios.gate(id);
              return handle(m, folios, (Long) args[0], id);
            }
            case "prepareSplit":
            case "prepareMerge":
              return FolioAllocator.Restructure.NOTHING;
            case "hashCode":
              return System.identityHashCode(proxy);
            case "equals":
              return proxy == args[0];
            default: // memory, close, toString
              return m.getReturnType() == String.class ? "race-test-allocator" : null;
          }
        });
  }

  /** A folio handle of whatever type {@code allocate} returns: commit makes it the index's, free gives it back. */
  private static Object handle(Method allocate, Folios folios, long index, int id) {
    return Proxy.newProxyInstance(AllocationRaceTest.class.getClassLoader(), new Class<?>[] {allocate.getReturnType()},
        (proxy, m, args) -> {
          switch (m.getName()) {
            case "commit":
              folios.held.put(index, id);
              return null;
            case "free":
              folios.free(id);
              return null;
            case "hashCode":
              return System.identityHashCode(proxy);
            case "equals":
              return proxy == args[0];
            default:
              return m.getReturnType() == String.class ? "folio " + id : null;
          }
        });
  }

  private static void fault(GuestMemInodeImpl inode, long index) {
    Lock lock = inode.invalidateLock().readLock();
    lock.lock();
    try {
      inode.faults().ensureFolio(index);
    } finally {
      lock.unlock();
    }
  }

  @Test
  void loserFreesItsOwnFolio() throws Exception {
    long size = 8 * PAGE;
    Fd memory = new Fd(SYS, SYS.memfdCreate("allocation-race-test", Sys.MFD_CLOEXEC), "memfd");
    SYS.ftruncate(memory.get(), size);
    Folios folios = new Folios();
    GuestMemInodeImpl inode = new GuestMemInodeImpl(
        1, size, GmemFlags.MMAP | GmemFlags.INIT_SHARED, SYS, memory, allocator(folios), new ArchHooks() {}, List.of(), List.of(), true);
    try {
      Thread loser = new Thread(() -> fault(inode, 3), "loser");
      loser.start();
      await(folios.loserInside);
      fault(inode, 3); // allocates second, adds first: the winner
      folios.winnerDone.countDown();
      loser.join();

      int winner = folios.allocated.get(1);
      assertEquals(Set.of(winner), folios.live, "only the winner's folio is alive");
      assertEquals(winner, (int) folios.held.get(3L), "and it is the one held for page 3");
      assertEquals(List.of(), folios.errors);

      inode.holePunch().fallocate(Fallocate.KEEP_SIZE | Fallocate.PUNCH_HOLE, 3 * PAGE, PAGE);
      assertTrue(folios.live.isEmpty(), "punch frees the winner's folio");
      assertEquals(List.of(), folios.errors);
    } finally {
      inode.release();
    }
  }

  private static void faultRun(GuestMemInodeImpl inode, long start, long end) {
    Lock lock = inode.invalidateLock().readLock();
    lock.lock();
    try {
      inode.faults().hostFault(start, end, true);
    } finally {
      lock.unlock();
    }
  }

  private static GuestMemInodeImpl inode(Folios folios, long size) {
    Fd memory = new Fd(SYS, SYS.memfdCreate("allocation-race-test", Sys.MFD_CLOEXEC), "memfd");
    SYS.ftruncate(memory.get(), size);
    return new GuestMemInodeImpl(
        1, size, GmemFlags.MMAP | GmemFlags.INIT_SHARED, SYS, memory, allocator(folios), new ArchHooks() {}, List.of(), List.of(), true);
  }

  /**
   * A run of pages faulted in one call (a bulk write: one filemap update for the run) races a
   * single fault of its middle page and loses that page: it frees its own folio for it, keeps the
   * others, and the winner's stays the page's.
   */
  @Test
  void aRunThatLosesAMiddlePageFreesItsOwnFolioForIt() throws Exception {
    Folios folios = new Folios();
    GuestMemInodeImpl inode = inode(folios, 8 * PAGE);
    try {
      Thread run = new Thread(() -> faultRun(inode, 0, 8), "run"); // allocates page 0 first (folio 1), held there
      run.start();
      await(folios.loserInside);
      fault(inode, 3); // folio 2 goes in for page 3
      folios.winnerDone.countDown();
      run.join();

      int winner = folios.allocated.get(1);
      assertEquals(winner, (int) folios.held.get(3L), "page 3 keeps the winner's folio");
      assertEquals(9, folios.allocated.size(), "the run allocated its 8 pages, the winner one");
      int lost = folios.allocated.get(4); // pages 0, 1, 2 took folios 1, 3, 4; page 3 took folio 5
      assertTrue(!folios.live.contains(lost) && folios.live.contains(winner), "the run freed its own folio for page 3, not the winner's");
      assertEquals(8, folios.live.size(), "one live folio per page");
      assertEquals(8, Set.copyOf(folios.held.values()).size(), "each page holds its own");
      assertEquals(8, inode.filemap().presentPages());
      assertEquals(List.of(), folios.errors);

      inode.holePunch().fallocate(Fallocate.KEEP_SIZE | Fallocate.PUNCH_HOLE, 0, 8 * PAGE);
      assertTrue(folios.live.isEmpty(), "punch frees every page's folio");
      assertEquals(List.of(), folios.errors);
    } finally {
      inode.release();
    }
  }

  /** A run over a present middle page allocates only the absent ones; the present folio stays. */
  @Test
  void aRunLeavesAPresentMiddlePageAlone() {
    Folios folios = new Folios();
    folios.winnerDone.countDown(); // no gate
    GuestMemInodeImpl inode = inode(folios, 8 * PAGE);
    try {
      fault(inode, 5);
      int first = folios.allocated.get(0);
      faultRun(inode, 2, 8);
      assertEquals(first, (int) folios.held.get(5L), "page 5 keeps its folio");
      assertEquals(6, folios.allocated.size(), "one allocation for page 5, then one for each of pages 2..4, 6, 7");
      assertEquals(6, folios.live.size());
      assertEquals(6, inode.filemap().presentPages());
      assertEquals(List.of(), folios.errors);
    } finally {
      inode.release();
    }
  }
}
