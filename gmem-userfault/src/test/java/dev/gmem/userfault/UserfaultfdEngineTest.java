package dev.gmem.userfault;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import dev.gmem.userfault.uffd.Native;
import dev.gmem.userfault.uffd.UffdHandler;
import dev.gmem.userfault.uffd.UffdPages;
import dev.gmem.userfault.uffd.Userfaultfd;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import jnr.ffi.Pointer;
import org.junit.jupiter.api.Test;

/**
 * The userfaultfd engine on real userfaultfd, on the memfd backend's shmem: MISSING + UFFDIO_COPY,
 * MINOR + UFFDIO_CONTINUE, UFFDIO_ZEROPAGE for a page the source calls zero, EVENT_REMOVE, and a
 * stalled source whose fault is poisoned at the deadline (the access fails, never sees zeros).
 * Faults are made by the kernel copying from the registered raw view into a pipe — a thread in
 * native code, as a vCPU in KVM_RUN is — never by a Java access.
 */
class UserfaultfdEngineTest {
  static final long PAGE = 4096;

  /** {@code write(pipe, address, 4096)} then read the pipe back: the kernel faults on the page, not Java. */
  static byte[] kernelRead(long address) {
    int[] p = new int[2];
    assertEquals(0, Native.libc().pipe(p));
    try {
      long n = Native.libc().write(p[1], address, PAGE);
      if (n < 0) {
        int e = Native.errno();
        throw new GmemException(Errno.of(e), "write(pipe, registered page) failed: errno " + e);
      }
      Pointer buf = Native.allocate((int) PAGE);
      assertEquals(PAGE, Native.libc().read(p[0], buf.address(), PAGE));
      byte[] out = new byte[(int) PAGE];
      buf.get(0, out, 0, out.length);
      return out;
    } finally {
      Native.libc().close(p[0]);
      Native.libc().close(p[1]);
    }
  }

  static byte[] content(int seed) {
    byte[] b = new byte[(int) PAGE];
    for (int i = 0; i < b.length; i++) {
      b[i] = (byte) (seed + i % 251 + 1);
    }
    return b;
  }

  @Test
  void missingFaultsAreServedWithCopyAndKnownZeroPagesWithZeropage() {
    try (GmemRuntime rt = Backends.open("memfd"); UffdHandler h = UffdHandler.start(new FaultStats(), Duration.ofSeconds(10), "uffd-test")) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(8 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      try (HostMapping m = f.map()) {
        List<Long> asked = new CopyOnWriteArrayList<>();
        h.register(m.address(), 8 * PAGE, Userfaultfd.MODE_MISSING, (r, addr, write, page) -> {
          int index = (int) ((addr - r.start()) / PAGE);
          asked.add((long) index);
          if (index == 7) {
            return UffdPages.Answer.ZERO; // the source says: zero
          }
          page.put(content(index));
          return UffdPages.Answer.DATA;
        });
        assertArrayEquals(content(3), kernelRead(m.address() + 3 * PAGE));
        assertArrayEquals(new byte[(int) PAGE], kernelRead(m.address() + 7 * PAGE));
        assertArrayEquals(content(3), kernelRead(m.address() + 3 * PAGE), "present now: no second fault");
        assertEquals(List.of(3L, 7L), asked);
        assertEquals(2, h.faults());
        assertEquals(content(3)[100], m.getByte(3 * PAGE + 100), "the copy went into the file: gmem's accessors see it");
      }
    }
  }

  @Test
  void minorFaultsContinueOverPageCacheContent() {
    try (GmemRuntime rt = Backends.open("memfd"); UffdHandler h = UffdHandler.start(new FaultStats(), Duration.ofSeconds(10), "uffd-test")) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(4 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      try (HostMapping writer = f.map(); HostMapping m = f.map()) {
        writer.write(2 * PAGE, content(9), 0, (int) PAGE); // the page cache holds it; m has not mapped it
        List<Long> minor = new CopyOnWriteArrayList<>();
        h.register(m.address(), 4 * PAGE, Userfaultfd.MODE_MINOR, new UffdPages() {
          @Override
          public Answer missing(UffdHandler.Region r, long addr, boolean write, ByteBuffer page) {
            throw new AssertionError("MINOR only");
          }

          @Override
          public Answer minor(UffdHandler.Region r, long addr, boolean write) {
            minor.add((addr - r.start()) / PAGE);
            return Answer.PRESENT;
          }
        });
        assertArrayEquals(content(9), kernelRead(m.address() + 2 * PAGE));
        assertEquals(List.of(2L), minor);
      }
    }
  }

  @Test
  void removeEventsReachTheSourceAndTheRangeFaultsAsMissingAgain() {
    try (GmemRuntime rt = Backends.open("memfd"); UffdHandler h = UffdHandler.start(new FaultStats(), Duration.ofSeconds(10), "uffd-test")) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(4 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      try (HostMapping m = f.map()) {
        List<long[]> removed = new CopyOnWriteArrayList<>();
        List<Long> faults = new CopyOnWriteArrayList<>();
        h.register(m.address(), 4 * PAGE, Userfaultfd.MODE_MISSING, new UffdPages() {
          @Override
          public Answer missing(UffdHandler.Region r, long addr, boolean write, ByteBuffer page) {
            faults.add((addr - r.start()) / PAGE);
            page.put(content(faults.size()));
            return Answer.DATA;
          }

          @Override
          public void removed(UffdHandler.Region r, long start, long end) {
            removed.add(new long[] {(start - r.start()) / PAGE, (end - r.start()) / PAGE});
          }
        });
        assertArrayEquals(content(1), kernelRead(m.address()));
        assertEquals(0, Native.libc().madvise(m.address(), PAGE, 9 /* MADV_REMOVE */));
        // madvise returns once the handler thread has read the event, not once it has handled it.
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (removed.isEmpty() && System.nanoTime() < deadline) {
          Thread.onSpinWait();
        }
        assertEquals(1, removed.size());
        assertArrayEquals(new long[] {0, 1}, removed.get(0));
        assertArrayEquals(content(2), kernelRead(m.address()), "removed: missing again, served anew");
        assertEquals(List.of(0L, 0L), faults);
      }
    }
  }

  @Test
  void aStalledSourceIsPoisonedAtTheDeadlineAndTheAccessFailsInsteadOfSeeingZeros() {
    FaultStats stats = new FaultStats();
    try (GmemRuntime rt = Backends.open("memfd"); UffdHandler h = UffdHandler.start(stats, Duration.ofMillis(200), "uffd-test")) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(2 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      try (HostMapping m = f.map()) {
        h.register(m.address(), 2 * PAGE, Userfaultfd.MODE_MISSING, (r, addr, write, page) -> UffdPages.Answer.LATER);
        assertTrue((h.userfaultfd().features() & Userfaultfd.FEATURE_POISON) != 0, "6.18 offers UFFDIO_POISON");
        GmemException e = org.junit.jupiter.api.Assertions.assertThrows(GmemException.class, () -> kernelRead(m.address()));
        assertEquals(Errno.EFAULT, e.errno(), "the poisoned page fails the kernel's copy");
        assertNotNull(h.failure());
        assertTrue(h.failure().contains("not served within"), h.failure());
        assertEquals(1, stats.failedFaults());
      }
    }
  }
}
