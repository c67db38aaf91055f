package dev.gmem.arch.tdx;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Registers;
import dev.gmem.api.Segment;
import dev.gmem.api.Shareability;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.core.vcpu.GuestPrograms;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * {@code tdx_vcpu_pre_run}: no vCPU of a TD runs before {@code KVM_TDX_FINALIZE_VM}. A real vCPU's
 * {@code KVM_RUN} and every access or hypercall through the software vCPU fail with the kernel's
 * EINVAL — also on a page added at build time — and change nothing; after finalize both run.
 */
class RunBeforeFinalizeTest {
  private static final long PAGE = Td.PAGE;
  /** Where REAL_MODE_REPORT_BYTE_AT_64K loads from. */
  private static final long DATA = 0x10000;

  private record Snapshot(TdState state, List<SeptEntry> sept, int seamcalls, Shareability data, boolean dead) {
    static Snapshot of(Td td, GuestMemFile low) {
      return new Snapshot(td.module.state(), td.module.septEntries(), td.module.seamcalls().size(), low.shareability(DATA), td.vm.isDead());
    }
  }

  private static void refused(Td td, GuestMemFile low, Executable call) {
    Snapshot before = Snapshot.of(td, low);
    GmemException e = assertThrows(GmemException.class, call);
    assertEquals(Errno.EINVAL, e.errno(), e.getMessage());
    assertEquals(before, Snapshot.of(td, low), "a refused run changes nothing");
  }

  /** The TD's code page (real mode, at {@link GuestPrograms#CODE}), populated as a TD's image is. */
  private static void populateCode(Td td) {
    byte[] page = new byte[(int) PAGE];
    System.arraycopy(GuestPrograms.REAL_MODE_REPORT_BYTE_AT_64K, 0, page, 0, GuestPrograms.REAL_MODE_REPORT_BYTE_AT_64K.length);
    td.populate(GuestPrograms.CODE, page, TdxAbi.MEASURE_MEMORY_REGION);
  }

  @Test
  void bothVcpuPathsAreRefusedWithEinvalUntilFinalize() {
    try (Td td = new Td(PAGE); GuestMemFile low = td.vm.createGuestMemFile(DATA + PAGE, GmemFlags.MMAP)) {
      td.vm.setMemoryRegion(1, Memslot.GUEST_MEMFD, 0, DATA + PAGE, low, 0);
      populateCode(td);
      try (Vcpu cpu = td.vm.createVcpu(0)) {
        cpu.setSpecialRegisters(cpu.specialRegisters().withCodeSegment(Segment.realMode(0, true)).withDataSegments(Segment.realMode(0, false)));
        cpu.setRegisters(Registers.initial().withRip(GuestPrograms.CODE));

        refused(td, low, cpu::run);
        refused(td, low, () -> td.vm.softwareVcpu().read(GuestPrograms.CODE, new byte[8], 0, 8, true)); // an added page
        refused(td, low, () -> td.vm.softwareVcpu().read(DATA, new byte[8], 0, 8, true)); // would AUG
        refused(td, low, () -> td.vm.softwareVcpu().writeLong(DATA, 1, true));
        refused(td, low, () -> td.vm.softwareVcpu().readLong(DATA | TdxAbi.SHARED_BIT, false)); // shared-kind: no memslot, still refused
        refused(td, low, () -> td.vm.softwareVcpu().hypercall(TdxAbi.TDG_MEM_PAGE_ACCEPT, DATA));
        refused(td, low, cpu::run); // asked again: still not RUNNABLE

        td.vm.finalizeLaunch();
        VcpuExit first = cpu.run();
        assertNotNull(first, "KVM_RUN after finalize returns an exit");
        byte[] code = new byte[GuestPrograms.REAL_MODE_REPORT_BYTE_AT_64K.length];
        assertNull(td.vm.softwareVcpu().read(GuestPrograms.CODE, code, 0, code.length, true), "after finalize the guest reads its image");
        assertArrayEquals(GuestPrograms.REAL_MODE_REPORT_BYTE_AT_64K, code);
        assertEquals(TdxAbi.TDX_SUCCESS, td.vm.softwareVcpu().hypercall(TdxAbi.TDG_MEM_PAGE_ACCEPT, DATA).result().value(), "ACCEPT after finalize");
      }
    }
  }

  @Test
  void aDeadTdStaysRefusedWithEio() {
    try (Td td = new Td(PAGE)) {
      td.vm.finalizeLaunch();
      td.module.injectFailure(Seamcall.TDH_MEM_PAGE_AUG, TdxAbi.TDX_EPT_ENTRY_STATE_INCORRECT);
      GmemException bug = assertThrows(GmemException.class, () -> td.vm.softwareVcpu().read(Td.BASE, new byte[1], 0, 1, true));
      assertEquals(Errno.EIO, bug.errno(), "a failed AUG is KVM_BUG_ON: " + bug.getMessage());
      GmemException e = assertThrows(GmemException.class, () -> td.vm.softwareVcpu().readLong(Td.BASE, true));
      assertEquals(Errno.EIO, e.errno(), "once KVM_BUG_ON killed the TD, every run is EIO: " + e.getMessage());
    }
  }
}
