package dev.gmem.core.convert;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Shareability;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import dev.gmem.core.conformance.Errnos;
import dev.gmem.core.conformance.KernelCopy;
import dev.gmem.core.sys.MapCountBudget;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * vm.max_map_count is the process's, not gmem's: a guest converting alternating pages of a mapped
 * file must get ENOMEM from gmem while the JVM still has a generous number of VMAs left, the
 * failed call must change nothing, and a later whole-file to-shared that succeeds must leave every
 * page really mapped again.
 */
class MapCountTest {
  static final long PAGE = 4096;
  /** VMAs the JVM must still have when gmem says ENOMEM (thread stacks, heap commits, code cache). */
  static final long JVM_HEADROOM = 16_384;

  static java.util.stream.Stream<String> backends() {
    return Backends.names();
  }

  static long vmas() {
    try (var lines = Files.lines(Path.of("/proc/self/maps"))) {
      return lines.count();
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  static long maxMapCount() throws IOException {
    // Files.readString sees st_size 0 on procfs and returns one byte: read lines.
    return Long.parseLong(Files.readAllLines(Path.of("/proc/sys/vm/max_map_count")).get(0).trim());
  }

  @ParameterizedTest
  @MethodSource("backends")
  void alternatingPrivatePagesStopWithEnomemBeforeTheJvmRunsOutAndToSharedMeansMapped(String backend) throws Exception {
    long limit = maxMapCount();
    long pages = 2 * limit + 2; // more islands than the process could ever have
    MapCountBudget budget = MapCountBudget.process();
    long gmemBefore = budget.used();
    try (GmemRuntime rt = Backends.open(backend);
        GuestMemFile f = rt.createVm(VmType.SW_PROTECTED).createGuestMemFile(pages * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
        HostMapping m = f.map()) {
      assertNull(KernelCopy.read(m.address(), 8));
      long mapped = vmas();
      long charged = budget.used();
      GmemException refused = null;
      long p = 1;
      for (; p < pages; p += 2) {
        try {
          f.setShareability(p * PAGE, PAGE, Shareability.PRIVATE);
        } catch (GmemException e) {
          refused = e;
          break;
        }
      }
      assertNotNull(refused, "converted every other page of " + pages + " without running out of VMAs");
      assertEquals(Errno.ENOMEM, refused.errno(), refused.getMessage());
      assertEquals(p * PAGE, refused.errorOffset().orElseThrow());
      long atRefusal = vmas();
      assertTrue(atRefusal <= limit - JVM_HEADROOM,
          "gmem left the JVM only " + (limit - atRefusal) + " of " + limit + " VMAs");
      assertTrue(budget.used() <= budget.limit(), "gmem holds " + budget.used() + " VMAs, its share is " + budget.limit());
      // The count is the whole process's: the JVM starts and ends threads of its own meanwhile (JIT
      // compiler threads come and go with load), a stack and a guard VMA each; 18 were seen.
      assertTrue(Math.abs((atRefusal - mapped) - (budget.used() - charged)) <= 64,
          "gmem counts the VMAs it makes: " + (budget.used() - charged) + " charged, " + (atRefusal - mapped) + " made");
      assertEquals(Shareability.SHARED, f.shareability(p * PAGE), "the refused call changed nothing");
      assertNull(KernelCopy.read(m.address() + p * PAGE, 8), "the refused page is still mapped");

      // The JVM can still grow can still grow: threads need stacks (and guard pages), each a VMA or two.
      List<Thread> threads = new ArrayList<>();
      for (int t = 0; t < 256; t++) {
        Thread th = new Thread(() -> {});
        th.start();
        threads.add(th);
      }
      for (Thread th : threads) {
        th.join();
      }

      f.setShareability(0, pages * PAGE, Shareability.SHARED);
      for (long q = 1; q < p; q += 2) {
        assertNull(KernelCopy.read(m.address() + q * PAGE, 8), "page " + q + " is shared and must be mapped");
      }
      m.putLong((p - 2) * PAGE, 42);
      assertEquals(42, m.getLong((p - 2) * PAGE));
      assertEquals(charged, budget.used(), "shared again: the mapping is one VMA again");

    }
    assertEquals(gmemBefore, budget.used(), "closing gave every VMA back");
  }

  /** A mapping whose raw view was never handed out needs no covers: its VMAs do not grow with private islands. */
  @ParameterizedTest
  @MethodSource("backends")
  void islandsCostNoVmaInAMappingUsedOnlyThroughItsAccessors(String backend) throws Exception {
    long pages = 2 * maxMapCount() + 2;
    try (GmemRuntime rt = Backends.open(backend);
        GuestMemFile f = rt.createVm(VmType.SW_PROTECTED).createGuestMemFile(pages * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
        HostMapping m = f.map()) {
      long mapped = vmas();
      for (long p = 1; p < pages; p += 2) {
        f.setShareability(p * PAGE, PAGE, Shareability.PRIVATE);
      }
      assertTrue(vmas() <= mapped + 16, mapped + " → " + vmas() + " VMAs");
      m.putLong(0, 5);
      assertEquals(5, m.getLong(0));
      Errnos.expect(Errno.EACCES, () -> m.getLong(PAGE));
      // Handing the raw view out now would need a cover per island: refused, and the mapping stays usable.
      Errnos.expect(Errno.ENOMEM, m::address);
      assertEquals(5, m.getLong(0));
      f.setShareability(0, pages * PAGE, Shareability.SHARED);
      assertNull(KernelCopy.read(m.address() + PAGE, 8), "handed out once nothing needs covering");
    }
  }
}
