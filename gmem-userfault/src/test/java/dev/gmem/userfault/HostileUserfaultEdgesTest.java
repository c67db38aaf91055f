package dev.gmem.userfault;

import static org.junit.jupiter.api.Assertions.assertEquals;
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
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Hostile calls that already held when tried: kept so they keep holding. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class HostileUserfaultEdgesTest {
  static final long PAGE = 4096;

  @Test
  void userfaultWithoutGuestMemfdIsEinvalAndALateToggleThatMovesTheSlotChangesNothing() {
    try (GmemRuntime rt = Backends.open("kvm")) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(8 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      assertEquals(Errno.EINVAL, assertThrows(GmemException.class,
          () -> vm.setMemoryRegion(0, Userfault.MEM_USERFAULT, 0, 8 * PAGE, f, 0)).errno());
      assertTrue(vm.memslots().isEmpty(), "no slot was created");
      Memslot m = vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, 8 * PAGE, f, 0);
      assertEquals(Errno.EINVAL, assertThrows(GmemException.class,
          () -> vm.setMemoryRegion(0, Memslot.GUEST_MEMFD | Userfault.MEM_USERFAULT, PAGE * 16, 8 * PAGE, f, 0)).errno());
      assertEquals(m.flags(), vm.memslots().get(0).flags(), "the flag did not change either");
      assertEquals(m.gpa(), vm.memslots().get(0).gpa());
    }
  }

  @Test
  void aRunThatIsNotWholePagesOrLeavesItsSlotInstallsNothing() {
    try (GmemRuntime rt = Backends.open("memfd")) {
      Userfault uf = rt.feature(Userfault.class).orElseThrow();
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(8 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD | Userfault.MEM_USERFAULT, 0, 8 * PAGE, f, 0);
      uf.bitmap(vm, 0).setAll();
      assertEquals(Errno.EINVAL, assertThrows(GmemException.class, () -> uf.installRun(vm, 0, ByteBuffer.allocate((int) PAGE + 1))).errno());
      assertEquals(Errno.EINVAL, assertThrows(GmemException.class, () -> uf.installRun(vm, 6 * PAGE, ByteBuffer.allocate(3 * (int) PAGE))).errno());
      assertEquals(Errno.EINVAL, assertThrows(GmemException.class, () -> uf.await(vm, 64 * PAGE)).errno());
      assertEquals(Errno.EINVAL, assertThrows(GmemException.class, () -> uf.bitmap(vm, 5)).errno());
      assertEquals(Errno.EINVAL, assertThrows(GmemException.class, () -> uf.deadline(Duration.ZERO)).errno());
      assertEquals(Errno.EINVAL, assertThrows(GmemException.class, () -> uf.deadline(Duration.ofMillis(-1))).errno());
      assertEquals(8, uf.bitmap(vm, 0).countSet(), "nothing installed");
    }
  }

  @Test
  void aVmClosedWhileAHostAccessWaitsForAPageNeitherHangsNorServesZeros() throws Exception {
    try (GmemRuntime rt = Backends.open("memfd")) {
      Userfault uf = rt.feature(Userfault.class).orElseThrow();
      uf.deadline(Duration.ofSeconds(2));
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(8 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD | Userfault.MEM_USERFAULT, 0, 8 * PAGE, f, 0);
      uf.bitmap(vm, 0).set(2);
      try (HostMapping m = f.map()) {
        CompletableFuture<Byte> waiter = CompletableFuture.supplyAsync(() -> m.getByte(2 * PAGE));
        Thread.sleep(100);
        CompletableFuture<Void> closing = CompletableFuture.runAsync(vm::close);
        Throwable t = assertThrows(ExecutionException.class, () -> waiter.get(20, TimeUnit.SECONDS)).getCause();
        assertEquals(Errno.EIO, ((GmemException) t).errno(), "the page never came: EIO, not the fresh file's zero");
        closing.get(20, TimeUnit.SECONDS);
        assertTrue(!vm.isOpen());
      }
    }
  }
}
