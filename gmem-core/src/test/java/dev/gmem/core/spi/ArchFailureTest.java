package dev.gmem.core.spi;

import static dev.gmem.core.conformance.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.MapFlags;
import dev.gmem.api.Memslot;
import dev.gmem.api.Prot;
import dev.gmem.api.Shareability;
import dev.gmem.api.ShareabilityRange;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.core.conformance.Backends;
import dev.gmem.core.conformance.KernelCopy;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The arch's failures through the fixture arch, on every backend: a veto before the point of no
 * return changes nothing (and aborts runs accepted before it); a reclaim failure after it leaks
 * the page (never back to the allocator, counted, never handed out again); {@code KVM_BUG_ON}
 * makes every later call on the VM and its vCPUs fail with EIO (its files stay files). And the arch's verdict
 * on host faults (pKVM's hypervisor) stands over a SHARED page on every host path.
 */
class ArchFailureTest {
  static final long PAGE = 4096;
  static final long PAGES = 8;

  static Stream<String> backends() {
    return Backends.names();
  }

  private static FixtureArch arch(Vm vm) {
    return vm.arch(FixtureArch.class).orElseThrow();
  }

  private static GmemPage page(GuestMemFile f, long index) {
    return new GmemPage(f.inode().ino(), index);
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aVetoedConversionChangesNothingAndAbortsTheRunsAcceptedBeforeIt(String backend) {
    try (GmemRuntime rt = SpiFixtures.runtime(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile f = vm.createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      try (HostMapping m = f.map()) {
        for (long i = 0; i < PAGES; i++) {
          m.putLong(i * PAGE, 0x1000 + i);
        }
        f.setShareability(3 * PAGE, 2 * PAGE, Shareability.PRIVATE); // runs: [0,3) shared, [3,5) private, [5,8) shared
        List<ShareabilityRange> before = f.inode().shareabilityRanges(0, PAGES);
        long seq = f.shareabilitySequence();
        int mark = arch(vm).events().size();
        arch(vm).veto(page(f, 6), Errno.EPERM);

        expect(Errno.EPERM, () -> f.setShareability(0, PAGES * PAGE, Shareability.PRIVATE));

        assertEquals(before, f.inode().shareabilityRanges(0, PAGES), "shareability unchanged");
        assertEquals(seq, f.shareabilitySequence(), "no new shareability version was published");
        for (long i : new long[] {0, 1, 2, 5, 6, 7}) {
          assertEquals(0x1000 + i, m.getLong(i * PAGE), "shared page " + i + " keeps its contents and stays reachable");
        }
        assertEquals(null, KernelCopy.read(m.address(), 8), "the zapped host mapping was given back");
        List<String> events = arch(vm).events().subList(mark, arch(vm).events().size());
        String first = "prepareConversion Conversion[first=" + page(f, 0) + ", nrPages=3, from=SHARED, to=PRIVATE]";
        assertTrue(events.contains(first), events.toString());
        assertTrue(events.contains("abort Conversion[first=" + page(f, 0) + ", nrPages=3, from=SHARED, to=PRIVATE]"), "the run accepted before the veto is aborted: " + events);
        assertFalse(events.stream().anyMatch(e -> e.startsWith("commit")), "nothing committed: " + events);
      }
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void theArchCommitsAfterInvalidatingAndBeforeTheNewShareabilityIsVisible(String backend) {
    try (GmemRuntime rt = SpiFixtures.runtime(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile f = vm.createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, PAGES * PAGE, f, 0);
      vm.softwareVcpu().writeLong(2 * PAGE, 42, true);
      assertNotNull(arch(vm).entry(page(f, 2)), "the private fault prepared the page");

      f.setShareability(2 * PAGE, PAGE, Shareability.SHARED);

      List<String> events = arch(vm).events();
      int invalidate = events.indexOf("invalidate " + page(f, 2) + " +1");
      int commit = events.indexOf("commit Conversion[first=" + page(f, 2) + ", nrPages=1, from=PRIVATE, to=SHARED]");
      assertTrue(invalidate >= 0 && commit > invalidate, events.toString());
      assertEquals(null, arch(vm).entry(page(f, 2)), "the firmware took the page back");
      assertEquals(0, vm.softwareVcpu().readLong(2 * PAGE, false), "the fixture zeroes pages leaving private use");
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aPageTheArchCannotReclaimIsLeakedCountedAndNeverHandedOutAgain(String backend) {
    try (GmemRuntime rt = SpiFixtures.runtime(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile f = vm.createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, PAGES * PAGE, f, 0);
      for (long i = 2; i <= 3; i++) {
        vm.softwareVcpu().writeLong(i * PAGE, 7, true);
      }
      CountingAllocator alloc = CountingAllocator.last();
      arch(vm).failReclaim(page(f, 2), false);

      f.setShareability(2 * PAGE, 2 * PAGE, Shareability.SHARED); // past the point of no return: succeeds

      assertEquals(1, f.inode().leakedPages());
      assertTrue(alloc.outstanding.contains(2L) && !alloc.freed.contains(2L), "the leaked page stays with the firmware");
      assertNotNull(arch(vm).entry(page(f, 2)), "still assigned in the fixture's firmware");
      assertEquals(Shareability.SHARED, f.shareability(2 * PAGE), "the conversion itself went through");
      try (HostMapping m = f.map()) {
        expect(Errno.EHWPOISON, () -> m.getLong(2 * PAGE));
        assertEquals(Errno.EFAULT, KernelCopy.read(m.address() + 2 * PAGE, 8), "covered in the host mapping");
        assertEquals(0, m.getLong(3 * PAGE), "its neighbour converted normally (and was zeroed)");
      }
      assertInstanceOf(VcpuExit.MemoryFault.class, vm.softwareVcpu().read(2 * PAGE, new byte[8], 0, 8, false), "the guest cannot reach it");
      expect(Errno.EFAULT, () -> f.pin(2 * PAGE, PAGE));

      f.punchHole(2 * PAGE, 2 * PAGE);
      assertTrue(alloc.outstanding.contains(2L) && !alloc.freed.contains(2L), "a punch does not give it back either");
      assertTrue(alloc.freed.contains(3L), "the reclaimable neighbour went back");
      assertEquals(1, f.inode().leakedPages());
      try (HostMapping m = f.map()) {
        expect(Errno.EHWPOISON, () -> m.putLong(2 * PAGE, 1));
      }
      assertFalse(vm.isDead(), "a leak alone does not kill the VM");
      f.close();
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void afterKvmBugOnEveryCallOnTheVmItsVcpusAndFilesFailsWithEio(String backend) {
    try (GmemRuntime rt = SpiFixtures.runtime(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile f = vm.createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      GuestMemFile other = vm.createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, PAGES * PAGE, f, 0);
      Vcpu vcpu = backend.equals("kvm") ? vm.createVcpu(0) : null;
      f.setShareability(PAGE, PAGE, Shareability.PRIVATE);
      vm.softwareVcpu().writeLong(PAGE, 1, true);
      arch(vm).failReclaim(page(f, 1), true);

      f.setShareability(PAGE, PAGE, Shareability.SHARED);

      assertTrue(vm.isDead());
      assertEquals(1, f.inode().leakedPages());
      expect(Errno.EIO, () -> vm.createGuestMemFile(PAGE, GmemFlags.MMAP));
      expect(Errno.EIO, () -> vm.setMemoryRegion(1, Memslot.GUEST_MEMFD, PAGES * PAGE, PAGE, other, 0));
      expect(Errno.EIO, () -> vm.deleteMemoryRegion(0));
      expect(Errno.EIO, () -> vm.createVcpu(1));
      expect(Errno.EIO, () -> vm.softwareVcpu().read(0, new byte[1], 0, 1, false));
      expect(Errno.EIO, () -> vm.softwareVcpu().writeLong(0, 1, false));
      expect(Errno.EIO, () -> vm.softwareVcpu().hypercall(VcpuExit.Hypercall.MAP_GPA_RANGE, 0, 1, 0));
      expect(Errno.EIO, () -> vm.guestMemory().loadLong(0));
      expect(Errno.EIO, () -> vm.populate(0, ByteBuffer.allocate((int) PAGE), 1, 0));
      expect(Errno.EIO, vm::finalizeLaunch);
      if (vcpu != null) {
        expect(Errno.EIO, vcpu::run);
        expect(Errno.EIO, vcpu::registers);
        vcpu.close();
      }
      // The files stay usable as files, as a moved-away VM's do: memory is the inode's, and the
      // VMM needs them to reclaim it.
      other.setShareability(0, PAGE, Shareability.PRIVATE);
      other.punchHole(0, PAGE);
      try (HostMapping m = other.map(PAGE, PAGE, Prot.READ_WRITE, MapFlags.SHARED)) {
        m.putLong(0, 3);
      }
      assertArrayEquals(new long[] {0, 0}, new long[] {f.stat().size() - PAGES * PAGE, other.size() - PAGES * PAGE}, "queries still answer");
      f.close();
      other.close();
      vm.close();
      assertFalse(vm.isOpen(), "closing works on a dead VM");
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void theArchsHostFaultVerdictStandsOverASharedPageOnEveryHostPath(String backend) {
    try (GmemRuntime rt = SpiFixtures.runtime(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile f = vm.createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, PAGES * PAGE, f, 0);
      arch(vm).denyHost(page(f, 3));
      try (HostMapping m = f.map()) {
        assertEquals(Shareability.SHARED, f.shareability(3 * PAGE));
        expect(Errno.EACCES, () -> m.getLong(3 * PAGE));
        expect(Errno.EFAULT, () -> f.pin(3 * PAGE, PAGE));
        expect(Errno.EFAULT, () -> vm.guestMemory().loadLong(3 * PAGE));
        assertEquals(0, m.getLong(2 * PAGE), "its neighbours are the host's");
        vm.softwareVcpu().writeLong(3 * PAGE, 5, false); // the guest's shared access is not the host's
      }
    }
  }
}
