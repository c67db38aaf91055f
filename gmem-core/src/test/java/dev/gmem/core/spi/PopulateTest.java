package dev.gmem.core.spi;

import static dev.gmem.core.conformance.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
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
import dev.gmem.core.conformance.Backends;
import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@code Vm.populate} (kvm_gmem_populate) driving the fixture arch's post-populate callback:
 * partial progress the caller resumes, the memslot end, measurement, in-place population, the
 * launch-finalize step, and every bad input with its errno and nothing populated.
 */
class PopulateTest {
  static final int PAGE = 4096;
  static final long GPA = 0x20_0000;

  static Stream<String> backends() {
    return Backends.names();
  }

  private static ByteBuffer image(int pages) {
    ByteBuffer b = ByteBuffer.allocate(pages * PAGE).order(java.nio.ByteOrder.LITTLE_ENDIAN); // as the guest reads it
    for (int i = 0; i < b.capacity(); i++) {
      b.put(i, (byte) (i * 31 + i / PAGE));
    }
    return b;
  }

  /** The fixture's digest written out independently: SHA-256 over (gfn, page) of each page. */
  private static byte[] expectedDigest(ByteBuffer image, int pages) throws Exception {
    MessageDigest d = MessageDigest.getInstance("SHA-256");
    for (int i = 0; i < pages; i++) {
      d.update(ByteBuffer.allocate(8).putLong(0, GPA / PAGE + i));
      d.update(image.duplicate().position(i * PAGE).limit((i + 1) * PAGE));
    }
    return d.digest();
  }

  @ParameterizedTest
  @MethodSource("backends")
  void theArchMayDoFewerPagesTheCallerResumesAndTheMemslotEndStopsIt(String backend) throws Exception {
    try (GmemRuntime rt = SpiFixtures.runtime(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      FixtureArch arch = vm.arch(FixtureArch.class).orElseThrow();
      GuestMemFile f = vm.createGuestMemFile(8 * PAGE, GmemFlags.MMAP);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 5 * PAGE, f, 0); // the slot holds 5 of the 8 pages
      ByteBuffer src = image(8);
      arch.populateBudget(3);

      assertEquals(3, vm.populate(GPA, src, 8, FixtureArch.MEASURE), "the firmware stopped after 3 pages");
      assertEquals(3 * PAGE, src.position(), "the source advanced past the pages done");
      assertEquals(2, vm.populate(GPA + 3 * PAGE, src, 5, FixtureArch.MEASURE), "the memslot ends after 2 more");
      expect(Errno.EINVAL, () -> vm.populate(GPA + 5 * PAGE, src, 3, FixtureArch.MEASURE));

      assertArrayEquals(expectedDigest(image(8), 5), arch.measurement());
      for (int i = 0; i < 5; i++) {
        assertEquals(image(8).getLong(i * PAGE + 8), vm.softwareVcpu().readLong(GPA + i * PAGE + 8, true), "page " + i);
        assertNotNull(arch.entry(new GmemPage(f.inode().ino(), i)));
      }
      assertFalse(arch.events().stream().anyMatch(e -> e.startsWith("prepare ")), "populated pages count as prepared");
      assertEquals(Shareability.PRIVATE, f.shareability(0, 5 * PAGE).orElseThrow());
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void inPlacePopulateMeasuresWhatTheVmmWroteWhileTheMemoryWasShared(String backend) throws Exception {
    try (GmemRuntime rt = SpiFixtures.runtime(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      FixtureArch arch = vm.arch(FixtureArch.class).orElseThrow();
      GuestMemFile f = vm.createGuestMemFile(2 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 2 * PAGE, f, 0);
      ByteBuffer image = image(2);
      try (HostMapping m = f.map()) {
        m.write(0, image.array(), 0, 2 * PAGE);
      }
      f.setShareability(0, 2 * PAGE, Shareability.PRIVATE);

      assertEquals(2, vm.populate(GPA, null, 2, FixtureArch.MEASURE));
      assertArrayEquals(expectedDigest(image, 2), arch.measurement());
      expect(Errno.EEXIST, () -> vm.populate(GPA + PAGE, null, 1, 0));
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void badInputFailsWithTheKernelsErrnoAndPopulatesNothing(String backend) {
    try (GmemRuntime rt = SpiFixtures.runtime(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      FixtureArch arch = vm.arch(FixtureArch.class).orElseThrow();
      GuestMemFile f = vm.createGuestMemFile(4 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      GuestMemFile closed = vm.createGuestMemFile(PAGE, GmemFlags.MMAP);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 4 * PAGE, f, 0);
      vm.setMemoryRegion(1, Memslot.GUEST_MEMFD, 0, PAGE, closed, 0);
      closed.close();
      f.setShareability(0, 2 * PAGE, Shareability.PRIVATE);
      ByteBuffer src = image(4);

      expect(Errno.EINVAL, () -> vm.populate(GPA + 1, src, 1, 0));
      expect(Errno.EINVAL, () -> vm.populate(GPA, src, 0, 0));
      expect(Errno.EINVAL, () -> vm.populate(GPA, ByteBuffer.allocate(PAGE - 1), 1, 0));
      expect(Errno.EINVAL, () -> vm.populate(0x4000_0000L, src, 1, 0));
      expect(Errno.EINVAL, () -> vm.populate(GPA, src, 1, 0x80));
      expect(Errno.EINVAL, () -> vm.populate(GPA + 2 * PAGE, src, 1, 0));
      expect(Errno.EFAULT, () -> vm.populate(0, src, 1, 0));
      assertEquals(0, src.position());
      assertEquals(0, arch.events().stream().filter(e -> e.startsWith("postPopulate")).count(), "nothing was populated");
      assertEquals(0, f.inode().allocatedPages(), "nor allocated");

      assertEquals(2, vm.populate(GPA, src, 3, 0), "stops at the shared third page with the progress so far");
      expect(Errno.EEXIST, () -> vm.populate(GPA, src, 1, 0));

      vm.finalizeLaunch();
      assertTrue(arch.launched());
      expect(Errno.EINVAL, vm::finalizeLaunch);
      f.punchHole(0, PAGE);
      expect(Errno.EINVAL, () -> vm.populate(GPA, image(1), 1, 0));
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void theDefaultArchCopiesPrivatePagesAndDefinesNoFlags(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile f = vm.createGuestMemFile(2 * PAGE, GmemFlags.MMAP);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 2 * PAGE, f, 0);
      expect(Errno.EINVAL, () -> vm.populate(GPA, image(2), 2, 1));
      assertEquals(2, vm.populate(GPA, image(2), 2, 0));
      assertEquals(image(2).getLong(PAGE + 16), vm.softwareVcpu().readLong(GPA + PAGE + 16, true));
      vm.finalizeLaunch();

      Vm plain = rt.createVm(VmType.DEFAULT);
      GuestMemFile g = plain.createGuestMemFile(PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      plain.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, PAGE, g, 0);
      expect(Errno.EINVAL, () -> plain.populate(0, image(1), 1, 0));
    }
  }
}
