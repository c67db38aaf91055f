package dev.gmem.arch.snp;

import static dev.gmem.arch.snp.SnpVms.PAGE;
import static dev.gmem.arch.snp.SnpVms.page;
import static dev.gmem.core.conformance.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@code SNP_LAUNCH_UPDATE} through {@code Vm.populate}: NORMAL pages copied, ZERO pages zeroed,
 * launch pages immutable and validated until LAUNCH_FINISH, a CPUID page the firmware rejects
 * corrected and copied back (EIO, nothing added, the digest unchanged) and accepted on the retry,
 * partial progress the caller resumes, and every bad input with its errno and nothing changed.
 */
class LaunchUpdateTest {
  static final long GPA = 0x80_0000;

  static java.util.stream.Stream<String> backends() {
    return SnpVms.backends();
  }

  @ParameterizedTest
  @MethodSource("backends")
  void pagesArePlacedByTypeAndTheFirmwareMayStopEarly(String backend) {
    try (GmemRuntime rt = SnpVms.runtime(backend)) {
      Vm vm = rt.createVm(VmType.SNP);
      SnpArch snp = SnpVms.arch(vm);
      GuestMemFile f = vm.createGuestMemFile(8 * PAGE, GmemFlags.MMAP);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 8 * PAGE, f, 0);
      ByteBuffer image = SnpVms.image(4);
      snp.launchUpdateLimit(3);

      assertEquals(3, vm.populate(GPA, image, 4, PageType.NORMAL.value()), "the firmware did 3 of 4");
      assertEquals(3 * PAGE, image.position());
      assertEquals(1, vm.populate(GPA + 3 * PAGE, image, 1, PageType.NORMAL.value()), "resumed");
      assertEquals(1, vm.populate(GPA + 4 * PAGE, SnpVms.image(1), 1, PageType.ZERO.value()), "the source of a ZERO page is ignored");

      RmpEntry e = snp.rmpEntry(page(f, 2));
      assertTrue(e.assigned() && e.validated() && e.immutable(), "a pre-guest launch page");
      assertEquals(GPA + 2 * PAGE, e.gpa());
      vm.finalizeLaunch();
      assertFalse(snp.rmpEntry(page(f, 2)).immutable(), "guest-valid after LAUNCH_FINISH");
      assertArrayEquals(snp.launchDigest(), snp.measurement());

      for (int i = 0; i < 4; i++) {
        assertEquals(SnpVms.image(4).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong(i * PAGE + 16), vm.softwareVcpu().readLong(GPA + i * PAGE + 16, true), "page " + i);
      }
      assertEquals(0, vm.softwareVcpu().readLong(GPA + 4 * PAGE + 16, true));
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aRejectedCpuidPageIsCorrectedIntoTheSourceAndAcceptedOnTheRetry(String backend) {
    try (GmemRuntime rt = SnpVms.runtime(backend)) {
      Vm vm = rt.createVm(VmType.SNP);
      SnpArch snp = SnpVms.arch(vm);
      GuestMemFile f = vm.createGuestMemFile(2 * PAGE, GmemFlags.MMAP);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 2 * PAGE, f, 0);
      snp.cpuidPolicy((fn, sub, regs) -> fn == 7 ? new int[] {regs[0], regs[1] & ~(1 << 20), regs[2], regs[3]} : regs.clone());
      ByteBuffer table = SnpVms.cpuidPage(7, 0, 0xffff_ffff, 0, 0);
      byte[] digest = snp.launchDigest();

      expect(Errno.EIO, () -> vm.populate(GPA, table, 1, PageType.CPUID.value()));
      assertEquals(0xffef_ffff, table.order(ByteOrder.LITTLE_ENDIAN).getInt(16 + 28), "EBX bit 20 cleared in the source, as the firmware corrected it");
      assertEquals(0, table.position(), "no progress");
      assertFalse(snp.rmpEntry(page(f, 0)).assigned(), "the page went back to the hypervisor");
      assertArrayEquals(digest, snp.launchDigest(), "nothing measured");

      assertEquals(1, vm.populate(GPA, table, 1, PageType.CPUID.value()), "the corrected table passes");
      assertNotEquals(java.util.Arrays.toString(digest), java.util.Arrays.toString(snp.launchDigest()));
      assertEquals(0xffef_ffffL, vm.softwareVcpu().readLong(GPA + 40, true) >>> 32);
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void badInputFailsWithItsErrnoAndChangesNothing(String backend) {
    try (GmemRuntime rt = SnpVms.runtime(backend)) {
      Vm vm = rt.createVm(VmType.SNP);
      SnpArch snp = SnpVms.arch(vm);
      GuestMemFile f = vm.createGuestMemFile(4 * PAGE, GmemFlags.MMAP);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 4 * PAGE, f, 0);
      ByteBuffer src = SnpVms.image(1);

      for (long type : new long[] {0, PageType.VMSA.value(), 7, 1L << 40}) {
        expect(Errno.EINVAL, () -> vm.populate(GPA, src, 1, type));
      }
      expect(Errno.EINVAL, () -> vm.populate(GPA + 1, src, 1, PageType.NORMAL.value()));
      expect(Errno.EINVAL, () -> vm.populate(0x10_0000_0000L, src, 1, PageType.NORMAL.value()));
      expect(Errno.EINVAL, () -> snp.launchUpdateLimit(0));
      assertEquals(0, src.position());
      assertEquals(0, snp.assignedPages());
      assertArrayEquals(new byte[48], snp.launchDigest());

      assertEquals(1, vm.populate(GPA, src, 1, PageType.NORMAL.value()));
      expect(Errno.EEXIST, () -> vm.populate(GPA, SnpVms.image(1), 1, PageType.NORMAL.value()));
      byte[] digest = snp.launchDigest();
      vm.finalizeLaunch();
      expect(Errno.EINVAL, vm::finalizeLaunch);
      expect(Errno.EINVAL, () -> vm.populate(GPA + PAGE, SnpVms.image(1), 1, PageType.NORMAL.value()));
      assertArrayEquals(digest, snp.measurement());
      assertEquals(1, snp.assignedPages());
    }
  }
}
