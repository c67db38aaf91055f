package dev.gmem.userfault;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import dev.gmem.userfault.snapshot.LazyRestore;
import dev.gmem.userfault.snapshot.Snapshot;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Snapshot and lazy restore of a SW_PROTECTED VM with private pages, on real KVM (kvm backend, a
 * real vCPU): shareability comes back run for run, private content comes back private — read and
 * written through gmem's private access path, the host's views of those pages stay refused — and
 * the vCPU continues on the shared pages.
 */
class PrivateRestoreTest {
  static final long PAGE = 4096;
  static final long PRIVATE_FIRST = 8;
  static final long PRIVATE_PAGES = 4;

  @Test
  void privatePagesKeepTheirShareabilityAndContentAcrossALazyRestore(@TempDir Path dir) throws Exception {
    Snapshot snap;
    try (GmemRuntime rt = Backends.open("kvm")) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile f = vm.createGuestMemFile(16 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, 16 * PAGE, f, 0);
      vm.guestMemory().write(RealGuest.CODE, StageTwoInvalidationTest.READ_LOOP, 0, StageTwoInvalidationTest.READ_LOOP.length);
      vm.guestMemory().write(RealGuest.DATA, new byte[] {33}, 0, 1);
      f.setShareability(PRIVATE_FIRST * PAGE, PRIVATE_PAGES * PAGE, Shareability.PRIVATE);
      for (long p = PRIVATE_FIRST; p < PRIVATE_FIRST + PRIVATE_PAGES - 1; p++) { // the last private page stays zero
        vm.softwareVcpu().writeLong(p * PAGE + 16, 0x7a7a_0000L + p, true);
      }
      try (Vcpu cpu = vm.createVcpu(0)) {
        RealGuest.startRealMode(cpu, RealGuest.CODE);
        assertEquals(33, assertInstanceOf(VcpuExit.Io.class, cpu.run()).data()[0]);
        assertInstanceOf(VcpuExit.Hlt.class, cpu.run());
        snap = Snapshot.write(vm, cpu, dir);
      }
      assertEquals(f.inode().shareabilityRanges(0, 16), snap.files().get(0).shareability());
    }

    try (GmemRuntime rt = Backends.open("kvm"); LazyRestore r = LazyRestore.start(rt, snap, false, false)) {
      Userfault uf = rt.feature(Userfault.class).orElseThrow();
      Vm vm = r.vm();
      GuestMemFile f = r.memslots().get(0).file();
      assertEquals(snap.files().get(0).shareability(), f.inode().shareabilityRanges(0, 16), "shareability restored");

      long gpa = PRIVATE_FIRST * PAGE;
      VcpuExit.MemoryFault missing = assertInstanceOf(VcpuExit.MemoryFault.class, vm.softwareVcpu().read(gpa + 16, new byte[8], 0, 8, true));
      assertEquals(Userfault.EXIT_FLAG_USERFAULT, missing.flags() & Userfault.EXIT_FLAG_USERFAULT, "a private page comes on demand too");
      uf.await(vm, gpa);
      assertEquals(0x7a7a_0000L + PRIVATE_FIRST, vm.softwareVcpu().readLong(gpa + 16, true), "private content restored");
      assertTrue(f.shareability(gpa) == Shareability.PRIVATE, "and still private");
      GmemException refused = assertThrows(GmemException.class, () -> vm.guestMemory().loadLong(gpa + 16), "the host's view stays refused");
      assertNotNull(refused.errno());

      assertEquals(33, assertInstanceOf(VcpuExit.Io.class, r.run()).data()[0], "the vCPU continues on the restored shared page");
      r.server().prefetch(java.util.List.of(PRIVATE_FIRST + 1, PRIVATE_FIRST + 2, PRIVATE_FIRST + 3));
      for (long p = PRIVATE_FIRST + 1; p < PRIVATE_FIRST + PRIVATE_PAGES; p++) {
        uf.await(vm, p * PAGE);
        long want = p < PRIVATE_FIRST + PRIVATE_PAGES - 1 ? 0x7a7a_0000L + p : 0;
        assertEquals(want, vm.softwareVcpu().readLong(p * PAGE + 16, true), "private page " + p);
      }
    }
  }
}
