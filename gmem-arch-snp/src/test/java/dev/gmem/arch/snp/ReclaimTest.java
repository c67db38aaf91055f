package dev.gmem.arch.snp;

import static dev.gmem.arch.snp.SnpVms.PAGE;
import static dev.gmem.arch.snp.SnpVms.page;
import static dev.gmem.core.conformance.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.GmemPage;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Giving pages back: a reclaim the firmware refuses (fault injection) leaks the page — counted on
 * the inode, never handed out again — and optionally kills the VM cleanly; host accesses to an
 * assigned page are RMP violations; INIT_SHARED and NO_DIRECT_MAP are refused.
 */
class ReclaimTest {
  static final long GPA = 0x20_0000;

  static java.util.stream.Stream<String> backends() {
    return SnpVms.backends();
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aFailedReclaimLeaksThePageForGoodAndMayKillTheVm(String backend) {
    try (GmemRuntime rt = SnpVms.runtime(backend)) {
      Vm vm = rt.createVm(VmType.SNP);
      SnpArch snp = SnpVms.arch(vm);
      GuestMemFile f = vm.createGuestMemFile(4 * PAGE, GmemFlags.MMAP);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 4 * PAGE, f, 0);
      vm.finalizeLaunch();
      for (int i = 0; i < 3; i++) {
        assertEquals(SnpArch.PVALIDATE_SUCCESS, SnpGuest.pvalidate(vm.softwareVcpu(), GPA + i * PAGE, false, true));
      }
      GmemPage stuck = page(f, 1);
      snp.failReclaim(stuck, false);

      f.setShareability(0, 2 * PAGE, Shareability.SHARED);
      assertEquals(1, f.inode().leakedPages());
      assertTrue(snp.rmpEntry(stuck).assigned(), "still the guest's in the RMP");
      assertFalse(snp.rmpEntry(page(f, 0)).assigned());
      assertFalse(vm.isDead(), "sev_gmem_invalidate only leaks");
      try (HostMapping m = f.map()) {
        m.getLong(0);
        expect(Errno.EHWPOISON, () -> m.getLong(PAGE));
      }
      f.punchHole(PAGE, PAGE);
      f.setShareability(PAGE, PAGE, Shareability.PRIVATE);
      assertEquals(new dev.gmem.api.VcpuExit.MemoryFault(dev.gmem.api.VcpuExit.MemoryFault.FLAG_PRIVATE, GPA + PAGE, PAGE),
          vm.softwareVcpu().read(GPA + PAGE, new byte[1], 0, 1, true), "never handed out again");

      snp.failReclaim(page(f, 2), true);
      f.punchHole(2 * PAGE, PAGE);
      assertEquals(2, f.inode().leakedPages());
      assertTrue(vm.isDead(), "KVM_BUG_ON");
      expect(Errno.EIO, () -> vm.softwareVcpu().readLong(GPA, false));
      expect(Errno.EIO, () -> vm.populate(GPA + 3 * PAGE, null, 1, PageType.ZERO.value()));
      expect(Errno.EIO, () -> snp.pageStateChange(PageStateChange.buffer(PageStateChange.entry(0, 1, false, 0))));
      vm.close();
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void hostAccessesToAssignedPagesAreRmpViolationsAndSharedOnlyFlagsAreRefused(String backend) {
    try (GmemRuntime rt = SnpVms.runtime(backend)) {
      Vm vm = rt.createVm(VmType.SNP);
      SnpArch snp = SnpVms.arch(vm);
      GuestMemFile f = vm.createGuestMemFile(2 * PAGE, GmemFlags.MMAP);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 2 * PAGE, f, 0);
      assertEquals(1, vm.populate(GPA, SnpVms.image(1), 1, PageType.NORMAL.value()));
      long before = snp.rmpViolations();
      try (HostMapping m = f.map()) {
        expect(Errno.EACCES, () -> m.putLong(8, 1));
        expect(Errno.EFAULT, () -> vm.guestMemory().storeLong(GPA + 8, 1)); // the GPA view reports EFAULT
      }
      assertTrue(snp.rmpViolations() > before, "refused by the RMP check");
      long counted = snp.rmpViolations();
      assertFalse(snp.hostMayFault(page(f, 0), Shareability.PRIVATE), "assigned: the RMP refuses the host");
      assertEquals(counted + 1, snp.rmpViolations());
      assertTrue(snp.hostMayFault(page(f, 1), Shareability.SHARED));
      assertEquals(SnpVms.image(1).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong(8), vm.softwareVcpu().readLong(GPA + 8, true), "nothing was written");

      long flags = vm.supportedGuestMemFlags();
      assertEquals(0, flags & GmemFlags.INIT_SHARED);
      assertEquals(0, flags & GmemFlags.NO_DIRECT_MAP);
      expect(Errno.EINVAL, () -> vm.createGuestMemFile(PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED));
      expect(Errno.EINVAL, () -> vm.createGuestMemFile(PAGE, GmemFlags.MMAP | GmemFlags.NO_DIRECT_MAP));
    }
  }
}
