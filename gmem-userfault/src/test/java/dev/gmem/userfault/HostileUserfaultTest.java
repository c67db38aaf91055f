package dev.gmem.userfault;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import dev.gmem.userfault.uffd.UffdHandler;
import dev.gmem.userfault.uffd.UffdPages;
import dev.gmem.userfault.uffd.Userfaultfd;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * What a hostile user of the userfault API tries: ranges out of bounds, a bitmap used after its
 * runtime closed, unaligned installs, VMs created and closed in a loop (leaks), a handler closed
 * under a waiting fault. Each failed call must change nothing and fail clearly.
 */
class HostileUserfaultTest {
  static final long PAGE = 4096;

  static Userfault uf(GmemRuntime rt) {
    return rt.feature(Userfault.class).orElseThrow();
  }

  /** Lines of /proc/self/maps and links in /proc/self/fd naming {@code what}. */
  static long mapped(String what) throws IOException {
    try (Stream<String> lines = Files.lines(Path.of("/proc/self/maps"))) {
      return lines.filter(l -> l.contains(what)).count();
    }
  }

  static long fds(String what) throws IOException {
    long n = 0;
    try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
      for (Path p : (Iterable<Path>) fds::iterator) {
        try {
          if (Files.readSymbolicLink(p).toString().contains(what)) {
            n++;
          }
        } catch (IOException gone) {
          // the directory's own fd, closed meanwhile
        }
      }
    }
    return n;
  }

  @Test
  void aRangeReachingPastTheBitmapSetsNothing() {
    try (GmemRuntime rt = Backends.open("memfd")) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(8 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, 8 * PAGE, f, 0);
      UserfaultBitmap b = uf(rt).bitmap(vm, 0);
      assertThrows(IndexOutOfBoundsException.class, () -> b.setRange(0, 9));
      assertEquals(0, b.countSet(), "a failed setRange sets no bit");
      assertThrows(IndexOutOfBoundsException.class, () -> b.setRange(-1, 3));
      assertThrows(IndexOutOfBoundsException.class, () -> b.setRange(5, 2), "an inverted range is no range");
      assertEquals(0, b.countSet());
      assertThrows(IndexOutOfBoundsException.class, () -> b.set(8));
      assertThrows(IndexOutOfBoundsException.class, () -> b.clear(-1));
      assertThrows(IndexOutOfBoundsException.class, () -> b.isSet(64), "bit 64 lies in the bitmap's memfd but not in the slot");
      assertEquals(0, b.countSet());
    }
  }

  @Test
  void aBitmapUsedAfterItsRuntimeClosedFailsWithEbadfInsteadOfTouchingUnmappedMemory() {
    UserfaultBitmap b;
    try (GmemRuntime rt = Backends.open("memfd")) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(8 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, 8 * PAGE, f, 0);
      b = uf(rt).bitmap(vm, 0);
      b.set(3);
    }
    // Before: each of these read or wrote the munmapped bitmap (SIGSEGV, or garbage from HotSpot).
    assertEquals(Errno.EBADF, assertThrows(GmemException.class, () -> b.isSet(3)).errno());
    assertEquals(Errno.EBADF, assertThrows(GmemException.class, () -> b.set(1)).errno());
    assertEquals(Errno.EBADF, assertThrows(GmemException.class, () -> b.clear(3)).errno());
    assertEquals(Errno.EBADF, assertThrows(GmemException.class, b::countSet).errno());
    assertEquals(Errno.EBADF, assertThrows(GmemException.class, b::fd).errno());
    b.close(); // twice: nothing
  }

  @Test
  void anUnalignedInstallIsEinvalAndInstallsNothing() {
    try (GmemRuntime rt = Backends.open("memfd")) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(8 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD | Userfault.MEM_USERFAULT, 0, 8 * PAGE, f, 0);
      Userfault uf = uf(rt);
      uf.bitmap(vm, 0).setAll();
      byte[] page = new byte[(int) PAGE];
      java.util.Arrays.fill(page, (byte) 7);
      assertEquals(Errno.EINVAL, assertThrows(GmemException.class, () -> uf.install(vm, 2 * PAGE + 8, ByteBuffer.wrap(page))).errno(),
          "UFFDIO_COPY with an unaligned destination is EINVAL");
      assertEquals(Errno.EINVAL, assertThrows(GmemException.class, () -> uf.installZero(vm, 3 * PAGE + 1)).errno());
      assertEquals(Errno.EINVAL, assertThrows(GmemException.class, () -> uf.install(vm, 2 * PAGE, ByteBuffer.wrap(page, 0, 100))).errno(),
          "a short page");
      assertEquals(Errno.EINVAL, assertThrows(GmemException.class, () -> uf.install(vm, 8 * PAGE, ByteBuffer.wrap(page))).errno(),
          "outside the memslot");
      assertTrue(uf.isMissing(vm, 2 * PAGE) && uf.isMissing(vm, 3 * PAGE), "nothing was installed");
      assertEquals(8, uf.bitmap(vm, 0).countSet());
      uf.install(vm, 2 * PAGE, ByteBuffer.wrap(page));
      assertEquals(Errno.EEXIST, assertThrows(GmemException.class, () -> uf.install(vm, 2 * PAGE, ByteBuffer.wrap(new byte[(int) PAGE]))).errno());
      byte[] back = new byte[(int) PAGE];
      vm.guestMemory().read(2 * PAGE, back, 0, back.length);
      assertArrayEquals(page, back, "the second install changed nothing");
    }
  }

  @Test
  void closedVmsLeaveNoBitmapBehind() throws Exception {
    try (GmemRuntime rt = Backends.open("memfd")) {
      Userfault uf = uf(rt);
      long maps0 = mapped("gmem-userfault-bitmap");
      long fds0 = fds("gmem-userfault-bitmap");
      for (int i = 0; i < 20; i++) {
        Vm vm = rt.createVm(VmType.DEFAULT);
        GuestMemFile f = vm.createGuestMemFile(8 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD | Userfault.MEM_USERFAULT, 0, 8 * PAGE, f, 0);
        uf.bitmap(vm, 0).set(1);
        f.close();
        vm.close();
      }
      assertEquals(fds0, fds("gmem-userfault-bitmap"), "bitmap memfds of closed VMs whose memory is gone");
      assertEquals(maps0, mapped("gmem-userfault-bitmap"), "bitmap mappings of closed VMs whose memory is gone");
    }
  }

  @Test
  void aHostAccessToAFileOfAClosedVmStillNeverSeesAMissingPage() {
    try (GmemRuntime rt = Backends.open("memfd")) {
      Userfault uf = uf(rt);
      uf.deadline(Duration.ofMillis(100));
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(8 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD | Userfault.MEM_USERFAULT, 0, 8 * PAGE, f, 0);
      uf.bitmap(vm, 0).set(1);
      try (HostMapping m = f.map()) {
        vm.close();
        assertEquals(Errno.EIO, assertThrows(GmemException.class, () -> m.getByte(PAGE)).errno(),
            "the page never arrived: its content is not the zero a fresh file holds");
        m.getByte(0); // present
      }
    }
  }

  @Test
  void aHandlerClosedUnderAWaitingFaultFailsItInsteadOfLettingItSeeZeros() throws Exception {
    try (GmemRuntime rt = Backends.open("memfd")) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(2 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      try (HostMapping m = f.map()) {
        UffdHandler h = UffdHandler.start(new FaultStats(), Duration.ofSeconds(30), "uffd-hostile");
        h.register(m.address(), 2 * PAGE, Userfaultfd.MODE_MISSING, (r, addr, write, page) -> UffdPages.Answer.LATER);
        CompletableFuture<byte[]> read = CompletableFuture.supplyAsync(() -> UserfaultfdEngineTest.kernelRead(m.address()));
        long until = System.nanoTime() + 10_000_000_000L;
        while (h.faults() == 0 && System.nanoTime() < until) {
          Thread.sleep(1);
        }
        assertEquals(1, h.faults());
        h.close();
        Throwable t = assertThrows(java.util.concurrent.ExecutionException.class, () -> read.get(10, java.util.concurrent.TimeUnit.SECONDS),
            "the page's source is gone: the access fails").getCause();
        assertEquals(Errno.EFAULT, ((GmemException) t).errno(), "the kernel's copy of a poisoned page: " + t);
        h.close(); // twice: nothing
        assertFalse(h.userfaultfd().isOpen());
      }
    }
  }
}
