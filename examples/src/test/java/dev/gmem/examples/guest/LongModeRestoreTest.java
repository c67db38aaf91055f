package dev.gmem.examples.guest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.userfault.Userfault;
import dev.gmem.userfault.snapshot.LazyRestore;
import dev.gmem.userfault.snapshot.Snapshot;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A paging 64-bit guest snapshotted and lazily restored on real KVM vCPUs: the slot holding its
 * page tables (which KVM walks itself) comes in whole, every touched page on demand, and the
 * guest's sum over the restored memory is the one it wrote.
 */
class LongModeRestoreTest {
  static final long PAGES = 256;
  static final long SEED = 0xabc;

  @Test
  void aLongModeGuestContinuesWithIdenticalMemoryAndItsTouchedPagesComeOnDemand(@TempDir Path dir) throws Exception {
    Snapshot snap;
    try (GmemRuntime rt = LongModeGuestTest.runtime()) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      long size = LongModeGuest.memorySize(PAGES);
      GuestMemFile f = vm.createGuestMemFile(size, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, LongModeGuest.DATA_BASE, f, 0);
      vm.setMemoryRegion(1, Memslot.GUEST_MEMFD, LongModeGuest.DATA_BASE, size - LongModeGuest.DATA_BASE, f, LongModeGuest.DATA_BASE);
      LongModeGuest.load(vm.guestMemory());
      try (Vcpu cpu = vm.createVcpu(0)) {
        LongModeGuest.start(cpu, LongModeGuest.DATA_BASE, PAGES, SEED);
        assertEquals(LongModeGuest.FILL_PORT, assertInstanceOf(VcpuExit.Io.class, cpu.run()).port());
        assertInstanceOf(VcpuExit.Hlt.class, cpu.run());
        snap = Snapshot.write(vm, cpu, dir);
      }
    }
    try (GmemRuntime rt = LongModeGuestTest.runtime(); LazyRestore r = LazyRestore.start(rt, snap, false, false)) {
      assertEquals(0, r.memslots().get(0).flags() & Userfault.MEM_USERFAULT, "the page-table slot is restored whole");
      assertTrue((r.memslots().get(1).flags() & Userfault.MEM_USERFAULT) != 0, "the data slot lazily");
      assertEquals(PAGES, r.server().totalPages());
      assertFalse(r.server().complete());
      assertEquals(LongModeGuest.SUM_PORT, assertInstanceOf(VcpuExit.Io.class, r.run()).port());
      assertEquals(LongModeGuest.expectedSum(LongModeGuest.DATA_BASE, PAGES, SEED), r.vcpu().registers().rdx());
      assertEquals(PAGES, r.server().demandOrder().size(), "without background fill every touched page was a demand fault");
      assertTrue(r.server().complete());
    }
  }
}
