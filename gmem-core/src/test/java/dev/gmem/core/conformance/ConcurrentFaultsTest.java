package dev.gmem.core.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Faults never block each other: threads fault the same pages and pages of their own, shared and
 * private, all at once from first touch on; every access completes and every write is visible
 * afterwards. Each thread owns one 8-byte cell per page, so any lost or misplaced write shows.
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
