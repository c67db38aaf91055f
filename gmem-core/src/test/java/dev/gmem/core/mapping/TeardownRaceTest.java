package dev.gmem.core.mapping;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.MemoryExitException;
import dev.gmem.api.Memslot;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.LongUnaryOperator;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Teardown excludes in-flight accesses (issue 8 item 9): readers hammer a mapping (or a memslot)
 * whose inode loses its last reference under them, and a new file is created and filled at once,
 * so that freed address space is likely reused by it. Every value a reader gets is the old file's,
 * every reader ends with a GmemException (or a memory exit) once the object is gone, and the JVM
 * survives: a load from unmapped memory would kill it with SIGSEGV.
 */
class TeardownRaceTest {
  private static final long PAGE = 4096;
  private static final int PAGES = 64;
  private static final int READERS = 6;
  private static final int ROUNDS = 40;

  static Stream<String> backends() {
    return Backends.names();
  }

  private static long oldValue(long page) {
    return 0x01d0_0000_0000_0000L | page;
  }

  private static long newValue(long page) {
    return 0x4e70_0000_0000_0000L | page;
  }

  /** What the readers saw. */
  private static final class Outcome {
    final AtomicLong reads = new AtomicLong();
    final AtomicLong wrong = new AtomicLong();
    final Set<String> endings = ConcurrentHashMap.newKeySet();
    final AtomicReference<Throwable> unexpected = new AtomicReference<>();
  }

  /**
   * Starts the readers, waits until each has read, runs {@code teardown}, and joins them. A reader
   * loops until an access fails; {@code read} returns the value at a page's first word.
   */
  private static void race(Outcome out, LongUnaryOperator read, Runnable teardown) throws InterruptedException {
    CountDownLatch started = new CountDownLatch(READERS);
    AtomicBoolean giveUp = new AtomicBoolean();
    List<Thread> threads = new ArrayList<>();
    for (int t = 0; t < READERS; t++) {
      long seed = t;
      Thread th = new Thread(() -> {
        SplittableRandom r = new SplittableRandom(seed);
        boolean counted = false;
        try {
          while (!giveUp.get()) {
            long p = r.nextInt(PAGES);
            long v = read.applyAsLong(p);
            out.reads.incrementAndGet();
            if (v != oldValue(p)) {
              out.wrong.incrementAndGet();
            }
            if (!counted) {
              counted = true;
              started.countDown();
            }
          }
          out.endings.add("still reading after teardown");
        } catch (MemoryExitException e) {
          out.endings.add("exit:" + e.exit().getClass().getSimpleName());
        } catch (GmemException e) {
          out.endings.add(e.errno().name());
        } catch (Throwable e) {
          out.unexpected.compareAndSet(null, e);
        } finally {
          if (!counted) {
            started.countDown();
          }
        }
      }, "teardown-reader-" + t);
      threads.add(th);
      th.start();
    }
    assertTrue(started.await(30, TimeUnit.SECONDS), "readers did not start");
    teardown.run();
    for (Thread th : threads) {
      th.join(10_000);
    }
    giveUp.set(true);
    for (Thread th : threads) {
      th.join(10_000);
      assertTrue(!th.isAlive(), "reader hangs");
    }
    if (out.unexpected.get() != null) {
      throw new AssertionError("reader failed", out.unexpected.get());
    }
  }

  private static void fill(HostMapping m, boolean old) {
    for (long p = 0; p < PAGES; p++) {
      m.putLong(p * PAGE, old ? oldValue(p) : newValue(p));
    }
  }

  /** Maps new files at once, filled with other values: a stale load from freed address space would read these. */
  private static void reuseFreedAddressSpace(Vm vm, List<HostMapping> next) {
    for (int i = 0; i < 2; i++) {
      GuestMemFile g = vm.createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      HostMapping gm = g.map();
      fill(gm, false);
      next.add(gm);
      g.close();
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void closingTheLastReferenceWhileHostAccessorsRunIsSafe(String backend) throws Exception {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      for (int round = 0; round < ROUNDS; round++) {
        GuestMemFile f = vm.createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
        HostMapping m = f.map();
        fill(m, true);
        f.close(); // the mapping holds the last reference
        Outcome out = new Outcome();
        List<HostMapping> next = new ArrayList<>();
        race(out, p -> m.getLong(p * PAGE), () -> {
          m.close();
          reuseFreedAddressSpace(vm, next);
        });
        assertEquals(0, out.wrong.get(), "reads of another file's memory (of " + out.reads + ")");
        assertTrue(Set.of("EFAULT", "EBADF").containsAll(out.endings), "readers ended with " + out.endings);
        next.forEach(HostMapping::close);
      }
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void closingTheFileAndDeletingTheLastMemslotWhileSoftwareVcpusRunIsSafe(String backend) throws Exception {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      SoftwareVcpu cpu = vm.softwareVcpu();
      for (int round = 0; round < ROUNDS; round++) {
        GuestMemFile f = vm.createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
        try (HostMapping m = f.map()) {
          fill(m, true);
        }
        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, PAGES * PAGE, f, 0);
        Outcome out = new Outcome();
        List<HostMapping> next = new ArrayList<>();
        race(out, p -> cpu.readLong(p * PAGE, false), () -> {
          f.close(); // guest accesses exit from now on; the memslot holds the last reference
          vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, 0, null, 0);
          reuseFreedAddressSpace(vm, next);
        });
        assertEquals(0, out.wrong.get(), "reads of another file's memory (of " + out.reads + ")");
        // A closed file's slot exits as a memory fault; once the slot is gone the access is MMIO.
        assertTrue(Set.of("exit:Mmio", "exit:MemoryFault").containsAll(out.endings), "readers ended with " + out.endings);
        next.forEach(HostMapping::close);
      }
    }
  }
  /**
   * Slot hints against deletion: readers alternate between a slot that stays and one that is
   * bound and deleted over and over, so that every access changes the vCPU's slot hint and hints
   * are installed while the slot is being deleted; each deleted slot's file is closed and its
   * address space reused at once. A reader that loaded a late-installed hint to a deleted slot
   * after its window went would read another file's values or die with SIGSEGV (the hint path
   * does not check the window: two grace periods cover it, SoftwareVcpuImpl#install).
   */
  @ParameterizedTest
  @MethodSource("backends")
  void deletingAMemslotWhileSoftwareVcpusSwitchSlotsIsSafe(String backend) throws Exception {
    long slot1 = 1L << 30;
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      SoftwareVcpu cpu = vm.softwareVcpu();
      GuestMemFile stays = vm.createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      try (HostMapping m = stays.map()) {
        fill(m, true);
      }
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, PAGES * PAGE, stays, 0);
      Outcome out = new Outcome();
      AtomicLong deletedReads = new AtomicLong();
      AtomicBoolean stop = new AtomicBoolean();
      List<Thread> readers = new ArrayList<>();
      for (int t = 0; t < READERS; t++) {
        long seed = t;
        Thread th = new Thread(() -> {
          SplittableRandom r = new SplittableRandom(seed);
          try {
            while (!stop.get()) {
              long p = r.nextInt(PAGES);
              if (cpu.readLong(p * PAGE, false) != oldValue(p)) {
                out.wrong.incrementAndGet();
              }
              try {
                if (cpu.readLong(slot1 + p * PAGE, false) != oldValue(p)) {
                  out.wrong.incrementAndGet();
                }
              } catch (MemoryExitException e) {
                deletedReads.incrementAndGet(); // between a deletion and the next bind: MMIO
              }
              out.reads.addAndGet(2);
            }
          } catch (Throwable e) {
            out.unexpected.compareAndSet(null, e);
          }
        }, "slot-switching-reader-" + t);
        readers.add(th);
        th.start();
      }
      try {
        for (int round = 0; round < 5 * ROUNDS; round++) {
          GuestMemFile f = vm.createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
          try (HostMapping m = f.map()) {
            fill(m, true);
          }
          vm.setMemoryRegion(1, Memslot.GUEST_MEMFD, slot1, PAGES * PAGE, f, 0);
          long seen = out.reads.get();
          while (out.reads.get() < seen + 2000 && out.unexpected.get() == null) {
            Thread.onSpinWait(); // let the readers fault the new slot's pages in and hit them lock-free
          }
          vm.setMemoryRegion(1, Memslot.GUEST_MEMFD, slot1, 0, null, 0);
          f.close();
          List<HostMapping> next = new ArrayList<>();
          reuseFreedAddressSpace(vm, next);
          next.forEach(HostMapping::close);
        }
      } finally {
        stop.set(true);
        for (Thread th : readers) {
          th.join(10_000);
        }
      }
      if (out.unexpected.get() != null) {
        throw new AssertionError("reader failed", out.unexpected.get());
      }
      assertEquals(0, out.wrong.get(), "reads of another file's memory (of " + out.reads + ")");
      assertTrue(deletedReads.get() > 0, "no reader ever met the slot deleted: the race was not run");
    }
  }
}
