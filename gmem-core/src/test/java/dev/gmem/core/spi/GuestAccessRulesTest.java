package dev.gmem.core.spi;

import static dev.gmem.core.conformance.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.MemoryExitException;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Rules on guest accesses that arch and feature plugins add: an exception the arch raises instead
 * of the access (TDX #VE before ACCEPT), and a memslot flag a feature contributes (KVM
 * Userfault's), toggled late on an existing slot and capping the mapping order at 4 KiB.
 */
class GuestAccessRulesTest {
  static final long PAGE = 4096;
  static final long GPA = 0x40_0000;
  static final long HUGE = 2L << 20;

  static Stream<String> backends() {
    return Backends.names();
  }

  @ParameterizedTest
  @MethodSource("backends")
  void theArchRaisesAnExceptionInsteadOfTheAccessUntilTheGuestAccepts(String backend) {
    try (GmemRuntime rt = SpiFixtures.runtime(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      vm.arch(FixtureArch.class).orElseThrow().requireAccept();
      GuestMemFile f = vm.createGuestMemFile(4 * PAGE, GmemFlags.MMAP);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 4 * PAGE, f, 0);

      VcpuExit.GuestException ve = new VcpuExit.GuestException(VcpuExit.GuestException.VE, 0, GPA + PAGE + 8);
      assertEquals(ve, vm.softwareVcpu().write(GPA + PAGE + 8, new byte[] {1}, 0, 1, true));
      assertEquals(ve, ((MemoryExitException) expect(Errno.EFAULT, () -> vm.softwareVcpu().readLong(GPA + PAGE + 8, true))).exit());
      assertEquals(0, vm.softwareVcpu().hypercall(FixtureArch.ACCEPT, GPA + PAGE).result().value());
      assertNull(vm.softwareVcpu().write(GPA + PAGE + 8, new byte[] {1}, 0, 1, true));
      assertEquals(1, vm.softwareVcpu().readLong(GPA + PAGE + 8, true));
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aFeatureMemslotFlagIsValidTogglesLateAndLimitsMappingsTo4k(String backend) {
    try (GmemRuntime rt = SpiFixtures.runtime(backend); GmemRuntime plain = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile f = vm.createGuestMemFile(HUGE, GmemFlags.MMAP | CountingAllocator.BLOCKS);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, HUGE, f, 0);
      vm.softwareVcpu().writeLong(GPA, 1, true); // a 2 MiB folio, prepared at that size
      assertEquals(9, vm.softwareVcpu().mappingOrder(GPA, true));

      Memslot toggled = vm.setMemoryRegion(0, Memslot.GUEST_MEMFD | FixtureFeature.USERFAULT, GPA, HUGE, f, 0);
      assertEquals(Memslot.GUEST_MEMFD | FixtureFeature.USERFAULT, toggled.flags());
      assertEquals(0, vm.softwareVcpu().mappingOrder(GPA, true), "4 KiB only while USERFAULT is set");
      assertEquals(1, vm.softwareVcpu().readLong(GPA, true), "the toggle changed no memory");
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, HUGE, f, 0);
      assertEquals(9, vm.softwareVcpu().mappingOrder(GPA, true), "lifted with the flag");

      expect(Errno.EINVAL, () -> vm.setMemoryRegion(0, Memslot.GUEST_MEMFD | Memslot.READONLY, GPA, HUGE, f, 0));
      expect(Errno.EINVAL, () -> vm.setMemoryRegion(0, Memslot.GUEST_MEMFD | FixtureFeature.USERFAULT, GPA, PAGE, f, 0));
      Vm other = plain.createVm(VmType.SW_PROTECTED);
      GuestMemFile g = other.createGuestMemFile(PAGE, GmemFlags.MMAP);
      expect(Errno.EINVAL, () -> other.setMemoryRegion(0, Memslot.GUEST_MEMFD | FixtureFeature.USERFAULT, 0, PAGE, g, 0));
    }
  }

  /** The software vCPU's last-used-slot hint must not carry a slot's flags across a late toggle. */
  @ParameterizedTest
  @MethodSource("backends")
  void aLateToggleReachesTheNextAccessOfTheSameVcpu(String backend) {
    try (GmemRuntime rt = SpiFixtures.runtime(backend)) {
      FixtureFeature feature = rt.feature(FixtureFeature.class).orElseThrow();
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(4 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 4 * PAGE, f, 0);
      vm.softwareVcpu().readLong(GPA, false);
      assertEquals(Memslot.GUEST_MEMFD, feature.lastGuestFault().slot().flags());
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD | FixtureFeature.USERFAULT, GPA, 4 * PAGE, f, 0);
      vm.softwareVcpu().readLong(GPA + PAGE, false);
      assertEquals(Memslot.GUEST_MEMFD | FixtureFeature.USERFAULT, feature.lastGuestFault().slot().flags());
    }
  }
}
