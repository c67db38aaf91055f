package dev.gmem.arch.snp;

import static dev.gmem.arch.snp.SnpVms.PAGE;
import static dev.gmem.arch.snp.SnpVms.page;
import static dev.gmem.core.conformance.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.MemoryExitException;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * PVALIDATE and the page-validation check: a private access to an unvalidated page is a #VC
 * (PAGE_NOT_VALIDATED), validation of a validated page is a #VC, a rescind returns the page to
 * unvalidated, bad PVALIDATE input fails without changing the RMP; a shared access to a private
 * page is a memory-fault exit (the C-bit disagrees with the attributes).
 */
class ValidationTest {
  static final long GPA = 0x20_0000;

  static java.util.stream.Stream<String> backends() {
    return SnpVms.backends();
  }

  @ParameterizedTest
  @MethodSource("backends")
  void unvalidatedAccessesRaiseVcUntilTheGuestValidates(String backend) {
    try (GmemRuntime rt = SnpVms.runtime(backend)) {
      Vm vm = rt.createVm(VmType.SNP);
      SnpArch snp = SnpVms.arch(vm);
      GuestMemFile f = vm.createGuestMemFile(4 * PAGE, GmemFlags.MMAP);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 4 * PAGE, f, 0);
      vm.finalizeLaunch();
      SoftwareVcpu cpu = vm.softwareVcpu();

      VcpuExit.GuestException vc = new VcpuExit.GuestException(VcpuExit.GuestException.VC, SnpArch.VC_PAGE_NOT_VALIDATED, GPA + PAGE + 8);
      assertEquals(vc, cpu.write(GPA + PAGE + 8, new byte[] {1}, 0, 1, true), "prepared (RMPUPDATE) but not validated");
      assertEquals(vc, ((MemoryExitException) expect(Errno.EFAULT, () -> cpu.readLong(GPA + PAGE + 8, true))).exit());
      assertTrue(snp.rmpEntry(page(f, 1)).assigned());
      assertFalse(snp.rmpEntry(page(f, 1)).validated());
      assertEquals(2, snp.vcEvents());

      assertEquals(SnpArch.PVALIDATE_SUCCESS, SnpGuest.pvalidate(cpu, GPA + PAGE, false, true));
      assertNull(cpu.write(GPA + PAGE + 8, new byte[] {1}, 0, 1, true));
      assertEquals(1, cpu.readLong(GPA + PAGE + 8, true));

      VcpuExit.GuestException twice = assertThrows(MemoryExitException.class, () -> SnpGuest.pvalidate(cpu, GPA + PAGE, false, true)).exit() instanceof VcpuExit.GuestException g ? g : null;
      assertEquals(new VcpuExit.GuestException(VcpuExit.GuestException.VC, SnpArch.VC_DOUBLE_VALIDATION, GPA + PAGE), twice);
      assertEquals(3, snp.vcEvents());

      assertEquals(SnpArch.PVALIDATE_SUCCESS, SnpGuest.pvalidate(cpu, GPA + PAGE, false, false), "rescind");
      assertEquals(SnpArch.PVALIDATE_FAIL_NOUPDATE, SnpGuest.pvalidate(cpu, GPA + PAGE, false, false), "rescinded already: no update");
      assertEquals(new VcpuExit.GuestException(VcpuExit.GuestException.VC, SnpArch.VC_PAGE_NOT_VALIDATED, GPA + PAGE),
          cpu.read(GPA + PAGE, new byte[1], 0, 1, true));

      VcpuExit.MemoryFault shared = new VcpuExit.MemoryFault(0, GPA + 2 * PAGE, PAGE);
      assertEquals(shared, cpu.read(GPA + 2 * PAGE, new byte[1], 0, 1, false), "a C-bit-clear access to a private page");
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aGuestThatValidatesJustBeforeFirstUsePreparesOnlyWhatItUses(String backend) {
    try (GmemRuntime rt = SnpVms.runtime(backend)) {
      Vm vm = rt.createVm(VmType.SNP);
      SnpArch snp = SnpVms.arch(vm);
      GuestMemFile f = vm.createGuestMemFile(4 * PAGE, GmemFlags.MMAP);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 4 * PAGE, f, 0);
      snp.validateBeforeFirstUse(GPA, 3 * PAGE);
      expect(Errno.EINVAL, () -> snp.validateBeforeFirstUse(GPA + 1, PAGE));
      expect(Errno.EINVAL, () -> snp.validateBeforeFirstUse(GPA, 0));

      assertNull(vm.softwareVcpu().write(GPA + PAGE, new byte[] {9}, 0, 1, true), "validated right before the access");
      assertTrue(snp.rmpEntry(page(f, 1)).validated());
      assertEquals(RmpEntry.HYPERVISOR, snp.rmpEntry(page(f, 2)), "never used: never faulted in");
      assertEquals(0, snp.vcEvents());
      assertEquals(new VcpuExit.GuestException(VcpuExit.GuestException.VC, SnpArch.VC_PAGE_NOT_VALIDATED, GPA + 3 * PAGE),
          vm.softwareVcpu().read(GPA + 3 * PAGE, new byte[1], 0, 1, true), "outside the range: #VC");
      f.setShareability(PAGE, PAGE, Shareability.SHARED);
      f.setShareability(PAGE, PAGE, Shareability.PRIVATE);
      assertEquals(new VcpuExit.GuestException(VcpuExit.GuestException.VC, SnpArch.VC_PAGE_NOT_VALIDATED, GPA + PAGE),
          vm.softwareVcpu().read(GPA + PAGE, new byte[1], 0, 1, true), "once per validation: private again, unvalidated again");
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void badPvalidateInputFailsAndChangesNothing(String backend) {
    try (GmemRuntime rt = SnpVms.runtime(backend)) {
      Vm vm = rt.createVm(VmType.SNP);
      SnpArch snp = SnpVms.arch(vm);
      GuestMemFile f = vm.createGuestMemFile(2 * PAGE, GmemFlags.MMAP);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 2 * PAGE, f, 0);
      SoftwareVcpu cpu = vm.softwareVcpu();
      assertEquals(SnpArch.PVALIDATE_SUCCESS, SnpGuest.pvalidate(cpu, GPA, false, true));
      RmpEntry before = snp.rmpEntry(page(f, 0));

      assertEquals(SnpArch.PVALIDATE_FAIL_INPUT, SnpGuest.pvalidate(cpu, GPA + 8, false, false), "unaligned");
      assertEquals(SnpArch.PVALIDATE_FAIL_INPUT, SnpGuest.pvalidate(cpu, GPA + PAGE, true, false), "not 2 MiB aligned");
      assertEquals(SnpArch.PVALIDATE_FAIL_INPUT, cpu.hypercall(SnpArch.PVALIDATE, GPA, 2, 0).result().value(), "page size 2");
      assertEquals(SnpArch.PVALIDATE_FAIL_INPUT, cpu.hypercall(SnpArch.PVALIDATE, GPA, 0, 7).result().value(), "validate 7");
      assertEquals(before, snp.rmpEntry(page(f, 0)));

      f.setShareability(PAGE, PAGE, Shareability.SHARED);
      MemoryExitException e = assertThrows(MemoryExitException.class, () -> SnpGuest.pvalidate(cpu, GPA + PAGE, false, true));
      assertEquals(new VcpuExit.MemoryFault(VcpuExit.MemoryFault.FLAG_PRIVATE, GPA + PAGE, PAGE), e.exit(),
          "PVALIDATE of a shared page: its nested fault exits to the VMM");
      assertEquals(SnpArch.PVALIDATE_NESTED_FAULT, cpu.hypercall(SnpArch.PVALIDATE, 0x7000_0000L, 0, 1).result().value(), "no page there");
      assertArrayEquals(new byte[48], snp.launchDigest(), "no launch update happened");
    }
  }
}
