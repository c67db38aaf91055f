package dev.gmem.arch.snp;

import static dev.gmem.arch.snp.SnpVms.PAGE;
import static dev.gmem.arch.snp.SnpVms.page;
import static dev.gmem.core.conformance.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Intra-host migration of an SNP guest: after {@code KVM_LINK_GUEST_MEMFD} and the context move the
 * destination owns the source's ASID, RMP (validated pages stay validated), launch state and
 * measurement; reclaim on the destination's conversions goes through its RMP.
 */
class ContextMoveTest {
  static final long GPA = 0x20_0000;

  static java.util.stream.Stream<String> backends() {
    return SnpVms.backends();
  }

  @ParameterizedTest
  @MethodSource("backends")
  void theDestinationTakesTheRmpAndTheLaunchState(String backend) {
    try (GmemRuntime rt = SnpVms.runtime(backend)) {
      Vm a = rt.createVm(VmType.SNP);
      SnpArch sa = SnpVms.arch(a);
      GuestMemFile fa = a.createGuestMemFile(4 * PAGE, GmemFlags.MMAP);
      a.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 4 * PAGE, fa, 0);
      assertEquals(1, a.populate(GPA, SnpVms.image(1), 1, PageType.NORMAL.value()));
      a.finalizeLaunch();
      assertEquals(SnpArch.PVALIDATE_SUCCESS, SnpGuest.pvalidate(a.softwareVcpu(), GPA + PAGE, false, true));
      a.softwareVcpu().writeLong(GPA + PAGE, 0x1234, true);
      RmpEntry validated = sa.rmpEntry(page(fa, 1));
      byte[] measurement = sa.measurement();

      Vm b = rt.createVm(VmType.SNP);
      SnpArch sb = SnpVms.arch(b);
      GuestMemFile fb = b.linkGuestMemFile(fa, 0);
      b.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 4 * PAGE, fb, 0);
      b.moveEncryptionContextFrom(a);

      assertEquals(sa.asid(), sb.asid());
      assertEquals(validated, sb.rmpEntry(page(fa, 1)));
      assertEquals(RmpEntry.HYPERVISOR, sa.rmpEntry(page(fa, 1)), "the source keeps nothing");
      assertArrayEquals(measurement, sb.measurement());
      assertTrue(sb.launched());
      expect(Errno.EINVAL, b::finalizeLaunch);
      assertEquals(0x1234, b.softwareVcpu().readLong(GPA + PAGE, true), "validated pages stay validated: no #VC");
      assertEquals(new VcpuExit.GuestException(VcpuExit.GuestException.VC, SnpArch.VC_PAGE_NOT_VALIDATED, GPA + 2 * PAGE),
          b.softwareVcpu().read(GPA + 2 * PAGE, new byte[1], 0, 1, true));
      fb.setShareability(PAGE, PAGE, Shareability.SHARED);
      assertEquals(RmpEntry.HYPERVISOR, sb.rmpEntry(page(fa, 1)), "reclaimed through the destination's RMP");
      assertNull(b.softwareVcpu().read(GPA + PAGE, new byte[1], 0, 1, false));
    }
  }
}
