package dev.gmem.arch.tdx;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.MemoryExitException;
import dev.gmem.api.Memslot;
import dev.gmem.api.Registers;
import dev.gmem.api.Segment;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.core.vcpu.GuestPrograms;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Runtime private faults: {@code TDH.MEM.PAGE.AUG} leaves the page pending, a private access
 * before {@code TDG.MEM.PAGE.ACCEPT} is an EPT-violation #VE on the software vCPU and on a real
 * KVM vCPU, and the accept maps it.
 */
class AcceptTest {
  private static final long PAGE = Td.PAGE;

  private static long accept(SoftwareVcpu sw, long gpa, int level) {
    return sw.hypercall(TdxAbi.TDG_MEM_PAGE_ACCEPT, gpa | level).result().value();
  }

  @ParameterizedTest
  @ValueSource(strings = {"kvm", "memfd"})
  void aPrivateAccessBeforeAcceptIsAVeAndAcceptMapsThePage(String backend) {
    try (Td td = new Td(backend, 4 * PAGE)) {
      td.vm.finalizeLaunch();
      SoftwareVcpu sw = td.vm.softwareVcpu();
      long gpa = Td.BASE + PAGE;
      VcpuExit.GuestException ve = new VcpuExit.GuestException(TdxAbi.VE, TdxAbi.EXIT_REASON_EPT_VIOLATION, gpa + 8);
      assertEquals(ve, sw.write(gpa + 8, new byte[] {1}, 0, 1, true), "AUGed, pending: #VE and nothing written");
      assertEquals(SeptState.PENDING, td.module.sept(gpa).orElseThrow().state());
      assertEquals(ve, assertThrows(MemoryExitException.class, () -> sw.readLong(gpa + 8, true)).exit(), "again: still pending");
      assertEquals(1, td.module.seamcalls().stream().filter(s -> s.call() == Seamcall.TDH_MEM_PAGE_AUG).count(), "one AUG per page");

      assertEquals(TdxAbi.TDX_SUCCESS, accept(sw, gpa, 0));
      assertEquals(SeptState.MAPPED, td.module.sept(gpa).orElseThrow().state());
      assertEquals(TdxAbi.TDX_PAGE_ALREADY_ACCEPTED, accept(sw, gpa, 0));
      assertEquals(0, sw.readLong(gpa + 8, true), "accepted pages start zeroed");
      sw.writeLong(gpa + 8, 0x1122334455667788L, true);
      assertEquals(0x1122334455667788L, sw.readLong(gpa + 8, true));

      VcpuExit.MemoryFault sharedAccess = new VcpuExit.MemoryFault(0, gpa, PAGE);
      assertEquals(sharedAccess, sw.read(gpa, new byte[1], 0, 1, false), "a shared access to a private page exits to the VMM");
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"kvm", "memfd"})
  void acceptBeforeTheFirstFaultMapsThePageWhenItIsAugmented(String backend) {
    try (Td td = new Td(backend, 4 * PAGE)) {
      td.vm.finalizeLaunch();
      SoftwareVcpu sw = td.vm.softwareVcpu();
      long gpa = Td.BASE + 2 * PAGE;
      assertEquals(TdxAbi.TDX_SUCCESS, accept(sw, gpa, 0));
      assertNull(sw.write(gpa, new byte[] {7}, 0, 1, true), "accepted ahead: no #VE");
      assertEquals(SeptState.MAPPED, td.module.sept(gpa).orElseThrow().state());
    }
  }

  @Test
  void badAcceptOperandsAreOperandInvalidAndChangeNothing() {
    try (Td td = new Td(4 * PAGE)) {
      td.vm.finalizeLaunch();
      SoftwareVcpu sw = td.vm.softwareVcpu();
      long gpa = Td.BASE;
      assertEquals(VcpuExit.GuestException.VE, ((VcpuExit.GuestException) sw.read(gpa, new byte[1], 0, 1, true)).vector());
      var before = td.module.septEntries();
      assertEquals(TdxAbi.TDX_OPERAND_INVALID, accept(sw, gpa | TdxAbi.SHARED_BIT, 0), "a shared GPA");
      assertEquals(TdxAbi.TDX_OPERAND_INVALID, accept(sw, gpa, 2), "1 GiB level");
      assertEquals(TdxAbi.TDX_OPERAND_INVALID, accept(sw, gpa | 0x10, 0), "reserved bits");
      assertEquals(TdxAbi.TDX_OPERAND_INVALID, accept(sw, gpa + PAGE, 1), "2 MiB accept of an unaligned GPA");
      assertEquals(TdxAbi.TDX_OPERAND_INVALID, accept(sw, 1L << TdxAbi.GPAW, 0), "beyond the GPA width");
      assertEquals(before.get(0), td.module.septEntries().get(0));
      assertEquals(SeptState.PENDING, td.module.sept(gpa).orElseThrow().state());
    }
  }

  /**
   * A real vCPU of the DEFAULT KVM VM under the TD runs real-mode code from a page of the TD's
   * image (populated, private: a TD fetches only private memory) and loads a byte from a private
   * page (GPA without the shared bit: a private access). KVM hands the access back, gmem's fault
   * path AUGs the page and the TD's rule makes it a #VE; after the guest's accept (issued for it
   * through the software vCPU: this host's KVM does not complete a guest's VMCALL) the next run
   * redoes the very load and reports the byte the guest wrote after accepting.
   */
  @Test
  void aRealVcpusPrivateLoadBeforeAcceptIsAVeToo() {
    long data = 0x10000; // where REAL_MODE_REPORT_BYTE_AT_64K loads from
    try (Td td = new Td(PAGE); GuestMemFile low = td.vm.createGuestMemFile(data + PAGE, GmemFlags.MMAP)) {
      td.vm.setMemoryRegion(1, Memslot.GUEST_MEMFD, 0, data + PAGE, low, 0);
      td.populate(GuestPrograms.CODE, RealVcpuAccessKindTest.codePage(), TdxAbi.MEASURE_MEMORY_REGION);
      td.vm.finalizeLaunch();
      try (Vcpu cpu = td.vm.createVcpu(0)) {
        cpu.setSpecialRegisters(cpu.specialRegisters().withCodeSegment(Segment.realMode(0, true)).withDataSegments(Segment.realMode(0, false)));
        cpu.setRegisters(Registers.initial().withRip(GuestPrograms.CODE));
        VcpuExit.GuestException ve = new VcpuExit.GuestException(TdxAbi.VE, TdxAbi.EXIT_REASON_EPT_VIOLATION, data);
        assertEquals(ve, cpu.run(), "the real vCPU's private load of a pending page");
        assertEquals(SeptState.PENDING, td.module.sept(data).orElseThrow().state());
        assertEquals(ve, cpu.run(), "still pending: the load raises #VE again");
        SoftwareVcpu sw = td.vm.softwareVcpu();
        assertEquals(TdxAbi.TDX_SUCCESS, accept(sw, data, 0));
        assertNull(sw.write(data, new byte[] {0x5c}, 0, 1, true));
        assertEquals(new VcpuExit.Io(true, 0x10, 1, 1, new byte[] {0x5c}), cpu.run(), "accepted: the same load completes");
        assertEquals(new VcpuExit.Hlt(), cpu.run());
      }
      byte[] b = new byte[1];
      assertNull(td.vm.softwareVcpu().read(data, b, 0, 1, true));
      assertArrayEquals(new byte[] {0x5c}, b);
    }
  }
}
