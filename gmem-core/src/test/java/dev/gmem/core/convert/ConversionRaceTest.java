package dev.gmem.core.convert;

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
import dev.gmem.api.Shareability;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Host and software-vCPU faults race conversions and punches for a bounded number of operations.
 * The arch zeroes pages leaving private use, so the host must never read a private tag; a shared
 * write that no conversion or punch touched must read back; nothing deadlocks.
 */
class ConversionRaceTest {
  static final long PAGE = 4096;
  static final int PAGES = 64;
  static final long PRIVATE_TAG = 0x7e57_0000_0000_0000L;
  static final long SHARED_TAG = 0x5a5a_0000_0000_0000L;
  static final long TAG_MASK = 0xffff_0000_0000_0000L;
  static final int ROUNDS = 4000;

  static java.util.stream.Stream<String> backends() {
    return Backends.names();
  }

  @ParameterizedTest
  @MethodSource("backends")
  void faultsRacingConversionsNeverLeakAndNeverLoseSharedWrites(String backend) throws Exception {
    try (GmemRuntime rt = TestRuntimes.withZeroingArch(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      try (GuestMemFile f = vm.createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
          HostMapping map = f.map()) {
        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, PAGES * PAGE, f, 0);
        SoftwareVcpu cpu = vm.softwareVcpu();
        // Bumped before and after every conversion or punch of a page: even and unchanged = untouched.
        AtomicLongArray epochs = new AtomicLongArray(PAGES);
        AtomicLong leaks = new AtomicLong();
        AtomicLong lost = new AtomicLong();
        AtomicLong sharedWrites = new AtomicLong();
        AtomicLong privateWrites = new AtomicLong();
        AtomicLong conversions = new AtomicLong();

        ExecutorService pool = Executors.newFixedThreadPool(5);
        List<Future<?>> jobs = new ArrayList<>();
        for (int c = 0; c < 2; c++) {
          long seed = c;
          jobs.add(pool.submit(() -> {
            SplittableRandom r = new SplittableRandom(seed);
            for (int i = 0; i < ROUNDS / 2; i++) {
              int start = r.nextInt(PAGES);
              int len = 1 + r.nextInt(Math.min(8, PAGES - start));
              for (int p = start; p < start + len; p++) {
                epochs.incrementAndGet(p);
              }
              try {
                if (r.nextInt(8) == 0) {
                  f.punchHole(start * PAGE, len * PAGE);
                } else {
                  f.setShareability(start * PAGE, len * PAGE, r.nextBoolean() ? Shareability.PRIVATE : Shareability.SHARED);
                  conversions.incrementAndGet();
                }
              } catch (GmemException e) {
                assertEquals(Errno.EAGAIN, e.errno(), e.getMessage());
              } finally {
                for (int p = start; p < start + len; p++) {
                  epochs.incrementAndGet(p);
                }
              }
            }
            return null;
          }));
        }
        jobs.add(pool.submit(() -> {
          SplittableRandom r = new SplittableRandom(7);
          for (int i = 0; i < ROUNDS; i++) {
            int p = r.nextInt(PAGES);
            long e1 = epochs.get(p);
            long v = SHARED_TAG | i;
            try {
              map.putLong(p * PAGE, v);
              sharedWrites.incrementAndGet();
              long back = map.getLong(p * PAGE);
              if ((map.getLong(p * PAGE + 8) & TAG_MASK) == PRIVATE_TAG) {
                leaks.incrementAndGet();
              }
              if ((e1 & 1) == 0 && e1 == epochs.get(p) && back != v) {
                lost.incrementAndGet();
              }
            } catch (GmemException e) {
              assertEquals(Errno.EACCES, e.errno(), e.getMessage());
            }
          }
          return null;
        }));
        for (int g = 0; g < 2; g++) {
          boolean writer = g == 0;
          jobs.add(pool.submit(() -> {
            SplittableRandom r = new SplittableRandom(writer ? 11 : 13);
            for (int i = 0; i < ROUNDS; i++) {
              int p = r.nextInt(PAGES);
              try {
                if (writer) {
                  cpu.writeLong(p * PAGE + 8, PRIVATE_TAG | i, true);
                  privateWrites.incrementAndGet();
                } else if ((cpu.readLong(p * PAGE + 8, false) & TAG_MASK) == PRIVATE_TAG) {
                  leaks.incrementAndGet(); // a shared guest access saw private data
                }
              } catch (MemoryExitException e) {
                // the page had the other shareability: the VMM would convert and retry
              }
            }
            return null;
          }));
        }
        pool.shutdown();
        assertTrue(pool.awaitTermination(120, TimeUnit.SECONDS), "deadlock: racing threads did not finish");
        for (Future<?> j : jobs) {
          j.get();
        }
        assertEquals(0, leaks.get(), "host or shared reads of private data");
        assertEquals(0, lost.get(), "shared writes lost without an intervening conversion or punch");
        assertTrue(sharedWrites.get() > 0 && privateWrites.get() > 0 && conversions.get() > 0,
            "the race exercised every path: " + sharedWrites + " shared, " + privateWrites + " private writes, " + conversions + " conversions");
      }
    }
  }
}
