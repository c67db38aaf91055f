package dev.gmem.core.spi;

import static dev.gmem.core.conformance.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Pin;
import dev.gmem.api.Shareability;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.api.spi.GuestFault;
import dev.gmem.core.conformance.Backends;
import java.nio.ByteOrder;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * What a feature plugin gets from 0.2, through the fixture feature: its instance reachable by the
 * VMM, inode memory it supplies, guest faults with their VM and memslot, host faults of the GPA
 * view, and pins it can refuse.
 */
class FeatureSurfaceTest {
  static final long PAGE = 4096;

  static Stream<String> backends() {
    return Backends.names();
  }

  @ParameterizedTest
  @MethodSource("backends")
  void theVmmReachesTheFeatureInstanceOnlyWhenItIsActive(String backend) {
    try (GmemRuntime rt = SpiFixtures.runtime(backend); GmemRuntime plain = Backends.open(backend)) {
      assertTrue(rt.feature(FixtureFeature.class).isPresent());
      assertSame(rt.feature(FixtureFeature.class).get(), rt.feature(dev.gmem.api.spi.FaultInterceptor.class).get());
      assertFalse(rt.feature(Runnable.class).isPresent());
      assertFalse(plain.feature(FixtureFeature.class).isPresent());
      assertTrue((rt.createVm(VmType.SW_PROTECTED).supportedGuestMemFlags() & FixtureFeature.SUPPLIED) != 0, "its flag is valid");
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void anInodeCanLiveInMemoryTheFeatureSupplies(String backend) {
    try (GmemRuntime rt = SpiFixtures.runtime(backend)) {
      FixtureFeature feature = rt.feature(FixtureFeature.class).orElseThrow();
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile f = vm.createGuestMemFile(2 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED | FixtureFeature.SUPPLIED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, 2 * PAGE, f, 0);
      try (HostMapping m = f.map()) {
        m.putLong(PAGE + 8, 0x5eed);
      }
      assertEquals(1, feature.supplied().size());
      assertEquals(0x5eed, feature.supplied().get(0).buffer(0, (int) (2 * PAGE)).order(ByteOrder.LITTLE_ENDIAN).getLong((int) PAGE + 8),
          "the bytes are in the feature's memory");
      assertEquals(0x5eed, vm.softwareVcpu().readLong(PAGE + 8, false));
      vm.createGuestMemFile(PAGE, GmemFlags.MMAP);
      assertEquals(1, feature.supplied().size(), "files without the flag use the backend");
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void interceptorsSeeTheVmAndMemslotOfAGuestFaultAndTheGpaViewAsHostFaults(String backend) {
    try (GmemRuntime rt = SpiFixtures.runtime(backend)) {
      FixtureFeature feature = rt.feature(FixtureFeature.class).orElseThrow();
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile f = vm.createGuestMemFile(4 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      Memslot slot = vm.setMemoryRegion(3, Memslot.GUEST_MEMFD, 0x10_0000, 4 * PAGE, f, 0);
      GmemPage page2 = new GmemPage(f.inode().ino(), 2);

      vm.softwareVcpu().writeLong(0x10_0000 + 2 * PAGE, 1, false);
      assertEquals(new GuestFault(vm, slot, page2, 0x10_0000 + 2 * PAGE, true, false), feature.lastGuestFault());

      feature.userfault(page2);
      assertEquals(new VcpuExit.MemoryFault(VcpuExit.MemoryFault.FLAG_USERFAULT, 0x10_0000 + 2 * PAGE, PAGE),
          vm.softwareVcpu().read(0x10_0000 + 2 * PAGE, new byte[8], 0, 8, false));

      vm.guestMemory().loadLong(0x10_0000 + PAGE);
      assertTrue(feature.events().contains("hostFault " + new GmemPage(f.inode().ino(), 1) + " read"), feature.events().toString());
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aFeatureRefusesPinsLikeGupAndHearsOfUnpins(String backend) {
    try (GmemRuntime rt = SpiFixtures.runtime(backend)) {
      FixtureFeature feature = rt.feature(FixtureFeature.class).orElseThrow();
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile f = vm.createGuestMemFile(4 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      feature.refusePins(new GmemPage(f.inode().ino(), 2));

      expect(Errno.EFAULT, () -> f.pin(PAGE, 2 * PAGE));
      f.setShareability(PAGE, 2 * PAGE, Shareability.PRIVATE); // nothing was pinned
      f.setShareability(PAGE, 2 * PAGE, Shareability.SHARED);

      try (Pin p = f.pin(0, PAGE)) {
        assertTrue(p.isHeld());
      }
      GmemPage page0 = new GmemPage(f.inode().ino(), 0);
      assertTrue(feature.events().contains("pin " + page0 + " +1") && feature.events().contains("unpin " + page0 + " +1"), feature.events().toString());
    }
  }
}
