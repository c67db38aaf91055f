package dev.gmem.arch.tdx;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.MapFlags;
import dev.gmem.api.Memslot;
import dev.gmem.api.Prot;
import dev.gmem.api.Registers;
import dev.gmem.api.Segment;
import dev.gmem.api.Shareability;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.core.vcpu.GuestPrograms;
import org.junit.jupiter.api.Test;

/**
 * A real vCPU of the DEFAULT KVM VM under a TD makes the software vCPU's access-kind rule: its GPAs
 * without the shared bit are private accesses, so a load from a page that is SHARED exits as
 * {@code KVM_EXIT_MEMORY_FAULT} with the private flag — the very exit the software vCPU gives for
 * the same access — and never reads the shared bytes; instruction fetches (always private on a
 * TD) likewise. Once a private access to a page was let through the kernel serves later ones
 * itself, until a conversion or punch zaps the page again.
 */
class RealVcpuAccessKindTest {
  private static final long PAGE = Td.PAGE;
  /** Where REAL_MODE_REPORT_BYTE_AT_64K loads from. */
  private static final long DATA = 0x10000;

  /** The TD's code page: REAL_MODE_REPORT_BYTE_AT_64K at {@link GuestPrograms#CODE}. */
  static byte[] codePage() {
    byte[] page = new byte[(int) PAGE];
    System.arraycopy(GuestPrograms.REAL_MODE_REPORT_BYTE_AT_64K, 0, page, 0, GuestPrograms.REAL_MODE_REPORT_BYTE_AT_64K.length);
    return page;
  }

  private static Vcpu realModeVcpu(Td td) {
    Vcpu cpu = td.vm.createVcpu(0);
    cpu.setSpecialRegisters(cpu.specialRegisters().withCodeSegment(Segment.realMode(0, true)).withDataSegments(Segment.realMode(0, false)));
    cpu.setRegisters(Registers.initial().withRip(GuestPrograms.CODE));
    return cpu;
  }

  /** A TD with its code populated at {@link GuestPrograms#CODE} and {@code low} bound at GPA 0, finalized. */
  private static void build(Td td, GuestMemFile low) {
    td.vm.setMemoryRegion(1, Memslot.GUEST_MEMFD, 0, DATA + PAGE, low, 0);
    td.populate(GuestPrograms.CODE, codePage(), TdxAbi.MEASURE_MEMORY_REGION);
    td.vm.finalizeLaunch();
  }

  @Test
  void aPrivateLoadOfASharedPageIsAPrivateMemoryFaultOnBothPaths() {
    try (Td td = new Td(PAGE); GuestMemFile low = td.vm.createGuestMemFile(DATA + PAGE, GmemFlags.MMAP)) {
      build(td, low);
      low.setShareability(DATA, PAGE, Shareability.SHARED);
      try (HostMapping m = low.map(DATA, PAGE, Prot.READ_WRITE, MapFlags.SHARED)) {
        m.write(0, new byte[] {0x33}, 0, 1); // shared bytes the private load must not see
      }
      SoftwareVcpu sw = td.vm.softwareVcpu();
      VcpuExit expected = sw.read(DATA, new byte[1], 0, 1, true);
      assertEquals(new VcpuExit.MemoryFault(VcpuExit.MemoryFault.FLAG_PRIVATE, DATA, PAGE), expected, "the software vCPU's private load of a shared page");
      try (Vcpu cpu = realModeVcpu(td)) {
        assertEquals(expected, cpu.run(), "the real vCPU's private load of the shared page");
        assertEquals(expected, cpu.run(), "still shared: the same exit again");

        // The VMM handles the exit as KVM_EXIT_MEMORY_FAULT asks: the page becomes private; the
        // guest's load is then a private fault on a page it has not accepted.
        low.setShareability(DATA, PAGE, Shareability.PRIVATE);
        assertEquals(new VcpuExit.GuestException(TdxAbi.VE, TdxAbi.EXIT_REASON_EPT_VIOLATION, DATA), cpu.run());
        assertEquals(TdxAbi.TDX_SUCCESS, sw.hypercall(TdxAbi.TDG_MEM_PAGE_ACCEPT, DATA).result().value());
        assertNull(sw.write(DATA, new byte[] {0x5c}, 0, 1, true));
        assertEquals(new VcpuExit.Io(true, 0x10, 1, 1, new byte[] {0x5c}), cpu.run(), "accepted: the load completes");
        assertEquals(new VcpuExit.Hlt(), cpu.run());
      }
    }
  }

  @Test
  void aConversionZapsWhatTheKernelServedPrivately() {
    try (Td td = new Td(PAGE); GuestMemFile low = td.vm.createGuestMemFile(DATA + PAGE, GmemFlags.MMAP)) {
      build(td, low);
      SoftwareVcpu sw = td.vm.softwareVcpu();
      assertEquals(TdxAbi.TDX_SUCCESS, sw.hypercall(TdxAbi.TDG_MEM_PAGE_ACCEPT, DATA).result().value());
      assertNull(sw.write(DATA, new byte[] {0x5c}, 0, 1, true));
      try (Vcpu cpu = realModeVcpu(td)) {
        assertEquals(new VcpuExit.Io(true, 0x10, 1, 1, new byte[] {0x5c}), cpu.run());
        assertEquals(new VcpuExit.Hlt(), cpu.run());
        // The page is now in the kernel's private stage 2: a second pass loads it without gmem.
        cpu.setRegisters(Registers.initial().withRip(GuestPrograms.CODE));
        assertEquals(new VcpuExit.Io(true, 0x10, 1, 1, new byte[] {0x5c}), cpu.run());
        assertEquals(new VcpuExit.Hlt(), cpu.run());

        // The guest shares the page (MapGPA; the VMM converts): the kernel's mapping is zapped.
        low.setShareability(DATA, PAGE, Shareability.SHARED);
        cpu.setRegisters(Registers.initial().withRip(GuestPrograms.CODE));
        assertEquals(new VcpuExit.MemoryFault(VcpuExit.MemoryFault.FLAG_PRIVATE, DATA, PAGE), cpu.run(),
            "after the conversion the private load no longer reaches the page");
      }
    }
  }

  @Test
  void fetchingFromASharedPageIsAPrivateMemoryFault() {
    try (Td td = new Td(PAGE); GuestMemFile low = td.vm.createGuestMemFile(DATA + PAGE, GmemFlags.MMAP)) {
      build(td, low);
      long code = 0x4000;
      low.setShareability(code, PAGE, Shareability.SHARED);
      try (HostMapping m = low.map(code, PAGE, Prot.READ_WRITE, MapFlags.SHARED)) {
        m.write(0, GuestPrograms.REAL_MODE_REPORT_BYTE_AT_64K, 0, GuestPrograms.REAL_MODE_REPORT_BYTE_AT_64K.length);
      }
      try (Vcpu cpu = realModeVcpu(td)) {
        cpu.setRegisters(Registers.initial().withRip(code));
        assertEquals(new VcpuExit.MemoryFault(VcpuExit.MemoryFault.FLAG_PRIVATE, code, PAGE), cpu.run(),
            "a TD executes private memory only");
      }
    }
  }
}
