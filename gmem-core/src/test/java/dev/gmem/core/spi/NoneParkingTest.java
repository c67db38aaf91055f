package dev.gmem.core.spi;

import static dev.gmem.core.conformance.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
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
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.core.conformance.Backends;
import dev.gmem.core.conformance.KernelCopy;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Busy references as the arch's policy: with PARK (pKVM) a conversion to private parks pinned
 * pages in NONE — no host or guest fault reaches them — and completes them when the last pin
 * goes, with the arch's drained callback; with EAGAIN (the default) the call fails as before.
 */
class NoneParkingTest {
  static final long PAGE = 4096;

  static Stream<String> backends() {
    return Backends.names();
  }

  @ParameterizedTest
  @MethodSource("backends")
  void pinnedPagesParkInNoneUntilThePinGoesThenBecomePrivate(String backend) {
    try (GmemRuntime rt = SpiFixtures.runtime(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      FixtureArch arch = vm.arch(FixtureArch.class).orElseThrow();
      arch.busyPolicy(ArchHooks.BusyPolicy.PARK);
      GuestMemFile f = vm.createGuestMemFile(4 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, 4 * PAGE, f, 0);
      GmemPage parked = new GmemPage(f.inode().ino(), 1);
      try (HostMapping m = f.map()) {
        m.putLong(PAGE, 0x77);
        Pin pin = f.pin(PAGE, PAGE);

        f.setShareability(0, 4 * PAGE, Shareability.PRIVATE);

        assertEquals(List.of(Shareability.PRIVATE, Shareability.NONE, Shareability.PRIVATE, Shareability.PRIVATE),
            List.of(f.shareability(0), f.shareability(PAGE), f.shareability(2 * PAGE), f.shareability(3 * PAGE)));
        assertTrue(arch.events().contains("prepareConversion Conversion[first=" + parked + ", nrPages=1, from=SHARED, to=NONE]"), arch.events().toString());
        expect(Errno.EACCES, () -> m.getLong(PAGE));
        assertEquals(Errno.EFAULT, KernelCopy.read(m.address() + PAGE, 8), "no host mapping reaches a NONE page");
        assertInstanceOf(VcpuExit.MemoryFault.class, vm.softwareVcpu().read(PAGE, new byte[8], 0, 8, true), "nor a private guest access");
        assertInstanceOf(VcpuExit.MemoryFault.class, vm.softwareVcpu().read(PAGE, new byte[8], 0, 8, false), "nor a shared one");
        expect(Errno.EFAULT, () -> f.pin(PAGE, PAGE));
        expect(Errno.EFAULT, () -> vm.guestMemory().loadLong(PAGE));
        assertFalse(arch.events().stream().anyMatch(e -> e.startsWith("drained")));

        pin.close();

        assertEquals(Shareability.PRIVATE, f.shareability(PAGE));
        assertTrue(arch.events().contains("drained " + parked + " +1"), arch.events().toString());
        assertEquals(0x77, vm.softwareVcpu().readLong(PAGE, true), "the guest has the page, contents intact");
      }
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void convertingAParkedPageBackToSharedCancelsTheDrain(String backend) {
    try (GmemRuntime rt = SpiFixtures.runtime(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      FixtureArch arch = vm.arch(FixtureArch.class).orElseThrow();
      arch.busyPolicy(ArchHooks.BusyPolicy.PARK);
      GuestMemFile f = vm.createGuestMemFile(2 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      try (Pin pin = f.pin(0, PAGE)) {
        f.setShareability(0, 2 * PAGE, Shareability.PRIVATE);
        assertEquals(Shareability.NONE, f.shareability(0));
        f.setShareability(0, PAGE, Shareability.SHARED);
        assertEquals(Shareability.SHARED, f.shareability(0));
        assertTrue(pin.isHeld(), "the pin still holds its page");
      }
      assertEquals(Shareability.SHARED, f.shareability(0), "nothing drained into private");
      assertFalse(arch.events().stream().anyMatch(e -> e.startsWith("drained")));
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void withTheDefaultPolicyABusyPageFailsTheConversionWithEagain(String backend) {
    try (GmemRuntime rt = SpiFixtures.runtime(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile f = vm.createGuestMemFile(2 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      try (Pin pin = f.pin(PAGE, PAGE)) {
        assertEquals(PAGE, expect(Errno.EAGAIN, () -> f.setShareability(0, 2 * PAGE, Shareability.PRIVATE)).errorOffset().getAsLong());
        assertEquals(Shareability.SHARED, f.shareability(0, 2 * PAGE).orElseThrow());
        assertTrue(pin.isHeld());
        assertNull(vm.arch(FixtureArch.class).orElseThrow().events().stream().filter(e -> e.startsWith("prepareConversion")).findAny().orElse(null),
            "the veto is asked only once the references are settled");
      }
    }
  }
}
