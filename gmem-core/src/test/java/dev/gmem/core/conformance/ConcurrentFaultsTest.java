package dev.gmem.core.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.convert.TestRuntimes;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Faults on different pages of one inode do not wait for each other, and racing faults lose no
 * write.
 *
 * <p>Concurrency is asserted, not inferred: {@link FaultGate} holds one fault in progress — in the
 * fault interceptor, before its folio is looked up or allocated, or in the filemap listener, after
 * the folio was added — and a fault of another page of the same inode, made by another thread
 * while the first one is held, must complete (first touch and all). Were faults serialised on
 * the way (an inode-wide lock or monitor around the fault path), the second fault would wait for
 * the first and the test fails. Host accessor faults, shared and private software-vCPU faults are
 * paired with each other.
 *
 * <p>Values: threads fault the same pages and pages of their own, shared and private, all at once
 * from first touch on; every access completes and every write is visible afterwards. Each thread
 * owns one 8-byte cell per page, so any lost or misplaced write shows.
 */
class ConcurrentFaultsTest {
  static final long PAGE = 4096;
  static final int THREADS = 8;
  /** Pages 0..7 are faulted by every thread; page 8+t by thread t only. */
  static final long PAGES = 8 + THREADS;
  static final int ROUNDS = 40;
  static final long SHARED_GPA = 1L << 32;
  static final long PRIVATE_GPA = 2L << 32;

  static Stream<String> backends() {
    return Backends.names();
  }

  private static long value(int thread, long page, int round) {
    return (long) thread << 48 | page << 32 | round;
  }

  private static long cell(int thread, long page) {
    return page * PAGE + thread * 8L;
  }

  /** A fault: how it is made and which page kind it touches. */
  enum Fault {
    HOST,
    GUEST_SHARED,
    GUEST_PRIVATE;

    /** Pages 0 and 1 are shared, 2 and 3 private: {@code nth} is 0 for the held fault, 1 for the other. */
    long page(int nth) {
      return (this == GUEST_PRIVATE ? 2 : 0) + nth;
    }

    void make(HostMapping host, SoftwareVcpu cpu, long page) {
      switch (this) {
        case HOST -> host.putLong(page * PAGE, 0x686f7374L);
        case GUEST_SHARED -> cpu.writeLong(SHARED_GPA + page * PAGE, 0x736861726564L, false);
        case GUEST_PRIVATE -> cpu.writeLong(SHARED_GPA + page * PAGE, 0x70726976L, true);
      }
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aFaultHeldInProgressDoesNotHoldUpAFaultOnAnotherPage(String backend) throws Exception {
    int cases = 0;
    ExecutorService pool = Executors.newFixedThreadPool(2);
    try (GmemRuntime rt = TestRuntimes.withFeature(backend, FaultGate.class)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      for (FaultGate.Point point : FaultGate.Point.values()) {
        for (Fault held : Fault.values()) {
          for (Fault other : Fault.values()) {
            try (GuestMemFile f = vm.createGuestMemFile(4 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED); HostMapping host = f.map()) {
              f.setShareability(2 * PAGE, 2 * PAGE, Shareability.PRIVATE);
              vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, SHARED_GPA, 4 * PAGE, f, 0);
              SoftwareVcpu cpu = vm.softwareVcpu();
              String what = point + ": " + other + " fault on page " + other.page(1) + " while " + held + " fault on page " + held.page(0) + " is held";
              try (FaultGate.Armed gate = FaultGate.arm(point, f.inode().ino(), held.page(0))) {
                Future<?> first = pool.submit(() -> held.make(host, cpu, held.page(0)));
                assertTrue(gate.awaitEntered(), what + ": the held fault never reached the gate");
                Future<?> second = pool.submit(() -> other.make(host, cpu, other.page(1)));
                try {
                  second.get(1, TimeUnit.MINUTES); // a deadlock guard, not a timing
                  assertEquals(1, f.inode().folios(other.page(1), other.page(1) + 1).size(), what + ": its page was allocated");
                  assertFalse(first.isDone(), what + ": the held fault is still in progress");
                } catch (TimeoutException e) {
                  gate.release();
                  fail("faults on different pages serialise: " + what + " waited for it");
                }
                gate.release();
                first.get(1, TimeUnit.MINUTES);
                second.get(1, TimeUnit.MINUTES);
                cases++;
              }
              vm.setMemoryRegion(0, 0, 0, 0, null, 0);
            }
          }
        }
      }
    } finally {
      pool.shutdownNow();
    }
    assertEquals(2 * 9, cases);
  }

  @ParameterizedTest
  @MethodSource("backends")
  void concurrentFaultsAllCompleteAndEveryWriteIsVisible(String backend) throws Exception {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      try (GuestMemFile shared = vm.createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
          GuestMemFile priv = vm.createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP);
          HostMapping host = shared.map()) {
        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, SHARED_GPA, PAGES * PAGE, shared, 0);
        vm.setMemoryRegion(1, Memslot.GUEST_MEMFD, PRIVATE_GPA, PAGES * PAGE, priv, 0);
        SoftwareVcpu cpu = vm.softwareVcpu();

        CyclicBarrier start = new CyclicBarrier(THREADS);
        ExecutorService pool = Executors.newFixedThreadPool(THREADS);
        try {
          List<Future<List<String>>> results = new ArrayList<>();
          for (int t = 0; t < THREADS; t++) {
            int self = t;
            results.add(pool.submit(() -> {
              List<String> wrong = new ArrayList<>();
              start.await(); // first touches race too
              for (int round = 0; round < ROUNDS; round++) {
                for (long k = 0; k <= 8; k++) {
                  long page = k == 8 ? 8 + self : (k + self) % 8;
                  long v = value(self, page, round);
                  cpu.writeLong(SHARED_GPA + cell(self, page), v, false);
                  cpu.writeLong(PRIVATE_GPA + cell(self, page), ~v, true);
                  long s = cpu.readLong(SHARED_GPA + cell(self, page), false);
                  long p = cpu.readLong(PRIVATE_GPA + cell(self, page), true);
                  if (s != v || p != ~v) {
                    wrong.add("thread " + self + " page " + page + " round " + round + ": read 0x" + Long.toHexString(s) + "/0x" + Long.toHexString(p));
                  }
                }
              }
              return wrong;
            }));
          }
          for (Future<List<String>> r : results) {
            assertEquals(List.of(), r.get(), "each thread reads back what it wrote");
          }
        } finally {
          pool.shutdownNow();
        }

        for (int t = 0; t < THREADS; t++) {
          for (long page = 0; page < PAGES; page++) {
            if (page >= 8 && page != 8 + t) {
              assertEquals(0, host.getLong(cell(t, page)), "nobody wrote thread " + t + "'s cell in page " + page);
              continue;
            }
            long last = value(t, page, ROUNDS - 1);
            assertEquals(last, host.getLong(cell(t, page)), "thread " + t + " page " + page + " through the host mapping");
            assertEquals(~last, cpu.readLong(PRIVATE_GPA + cell(t, page), true), "thread " + t + " private page " + page);
          }
        }
        assertEquals(PAGES, shared.inode().allocatedPages());
        assertEquals(PAGES, priv.inode().allocatedPages());
      }
    }
  }
}
