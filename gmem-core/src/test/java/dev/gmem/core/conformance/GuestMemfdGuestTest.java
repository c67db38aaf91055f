package dev.gmem.core.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Registers;
import dev.gmem.api.Segment;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.vcpu.GuestPrograms;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * The guest part of the kernel's {@code guest_memfd_test.c} ({@code test_guest_memfd_guest}),
 * through gmem's API only, on the kvm backend: a real vCPU of a real KVM VM reads and writes a
 * MMAP|INIT_SHARED guest_memfd page bound at GPA 4 GiB, and the host sees what the guest wrote
 * through a {@link HostMapping}. Unlike the selftest, code and page tables need memory of their
 * own (slot 0 at GPA 0); the selftest's framework provides that implicitly.
 */
class GuestMemfdGuestTest {
  static final long PAGE = 4096;
  /** Code at 0x1000, page tables at 0x3000..0x6fff. */
  static final long LOW_SIZE = 0x10000;

  @Test
  void guestSeesHostFillAndHostSeesGuestWrite() {
    assumeTrue(Files.exists(Path.of("/dev/kvm")), "host has no /dev/kvm: the guest test needs a real vCPU");
    try (GmemRuntime rt = Backends.open("kvm")) {
      assertEquals("kvm", rt.backend().name());
      Vm vm = rt.createVm(VmType.DEFAULT);
      long need = GmemFlags.MMAP | GmemFlags.INIT_SHARED;
      assertEquals(need, vm.supportedGuestMemFlags() & need, "the VM-scope flags contain MMAP and INIT_SHARED");

      try (GuestMemFile low = vm.createGuestMemFile(LOW_SIZE, need);
          GuestMemFile file = vm.createGuestMemFile(PAGE, need);
          HostMapping lowMap = low.map();
          HostMapping mem = file.map();
          Vcpu vcpu = vm.createVcpu(0)) {
        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, LOW_SIZE, low, 0);
        vm.setMemoryRegion(1, Memslot.GUEST_MEMFD, GuestPrograms.HIGH_GPA, PAGE, file, 0);
        lowMap.write(GuestPrograms.CODE, GuestPrograms.LONG_MODE_CHECK_AA_FILL_FF, 0, GuestPrograms.LONG_MODE_CHECK_AA_FILL_FF.length);
        for (long[] entry : GuestPrograms.identityPageTablesWithHighGpa()) {
          lowMap.putLong(entry[0], entry[1]);
        }

        vcpu.setSpecialRegisters(GuestPrograms.longMode(vcpu.specialRegisters()));

        // First prove the guest really reads the page: one wrong byte is reported, nothing written.
        mem.fill(0, PAGE, (byte) 0xaa);
        mem.putByte(0x123, (byte) 0x55);
        vcpu.setRegisters(Registers.initial().withRip(GuestPrograms.CODE));
        VcpuExit.Io report = (VcpuExit.Io) vcpu.run();
        assertEquals(GuestPrograms.MISMATCH_PORT, report.port());
        assertEquals(PAGE - 0x123, report.value(), "the guest found the byte the host changed");
        assertEquals(new VcpuExit.Hlt(), vcpu.run());
        assertEquals((byte) 0xaa, mem.getByte(0), "a failed check writes nothing");

        mem.putByte(0x123, (byte) 0xaa);
        vcpu.setRegisters(Registers.initial().withRip(GuestPrograms.CODE));
        VcpuExit exit = vcpu.run();
        if (exit instanceof VcpuExit.Io && ((VcpuExit.Io) exit).port() == GuestPrograms.MISMATCH_PORT) {
          throw new AssertionError("guest read a byte other than 0xaa at offset " + (PAGE - ((VcpuExit.Io) exit).value()));
        }
        assertEquals(new VcpuExit.Hlt(), exit);

        byte[] seen = new byte[(int) PAGE];
        mem.read(0, seen, 0, seen.length);
        for (int i = 0; i < seen.length; i++) {
          assertEquals((byte) 0xff, seen[i], "byte " + i + " after the guest's write");
        }
        assertEquals(1, file.inode().allocatedPages(), "the page lives in the guest_memfd");
      }
    }
  }

  /**
   * A bound file is closed and another file is created and bound: the guest must never reach the
   * new file's memory through the old slot. (Regression: the closed inode's internal mapping, the
   * slot's userspace_addr, was unmapped and the new file's mapping reused the address.) The slot
   * keeps the closed file's memory, as the kernel here keeps it for a VMM whose own mapping is the
   * userspace_addr (kernel-uapi §4.9), until the slot is deleted.
   */
  @Test
  void closingABoundFileNeverLetsTheGuestReachAnotherFilesMemory() {
    assumeTrue(Files.exists(Path.of("/dev/kvm")), "host has no /dev/kvm: the guest test needs a real vCPU");
    long flags = GmemFlags.MMAP | GmemFlags.INIT_SHARED;
    long gpa = 0x10000;
    try (GmemRuntime rt = Backends.open("kvm")) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile low = vm.createGuestMemFile(gpa, flags);
      GuestMemFile old = vm.createGuestMemFile(PAGE, flags);
      try (HostMapping lowMap = low.map(); Vcpu vcpu = vm.createVcpu(0)) {
        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, gpa, low, 0);
        vm.setMemoryRegion(1, Memslot.GUEST_MEMFD, gpa, PAGE, old, 0);
        lowMap.write(GuestPrograms.CODE, GuestPrograms.REAL_MODE_REPORT_BYTE_AT_64K, 0, GuestPrograms.REAL_MODE_REPORT_BYTE_AT_64K.length);
        try (HostMapping oldMap = old.map()) {
          oldMap.fill(0, PAGE, (byte) 0xaa);
        }
        vcpu.setSpecialRegisters(vcpu.specialRegisters().withCodeSegment(Segment.realMode(0, true)).withDataSegments(Segment.realMode(0, false)));
        vcpu.setRegisters(Registers.initial().withRip(GuestPrograms.CODE));
        assertEquals(new VcpuExit.Io(true, 0x10, 1, 1, new byte[] {(byte) 0xaa}), vcpu.run());
        assertEquals(new VcpuExit.Hlt(), vcpu.run());

        old.close(); // its last file and its last host mapping are gone; only the slot remains
        for (int i = 0; i < 4; i++) { // new files with fresh mappings, the same size as the old one's
          GuestMemFile other = vm.createGuestMemFile(PAGE, flags);
          try (HostMapping m = other.map()) {
            m.fill(0, PAGE, (byte) 0xbb);
          }
          vm.setMemoryRegion(2 + i, Memslot.GUEST_MEMFD, 1L << 32 | (long) i << 12, PAGE, other, 0);
        }
        vcpu.setRegisters(Registers.initial().withRip(GuestPrograms.CODE));
        assertEquals(new VcpuExit.Io(true, 0x10, 1, 1, new byte[] {(byte) 0xaa}), vcpu.run(), "the old slot still reaches only the old memory");
        assertEquals(new VcpuExit.Hlt(), vcpu.run());
        assertEquals(1, old.inode().allocatedPages(), "the slot keeps the closed file's memory");

        vm.setMemoryRegion(1, Memslot.GUEST_MEMFD, gpa, 0, null, 0);
        assertEquals(0, old.inode().allocatedPages(), "deleting the last reference frees it");
        vcpu.setRegisters(Registers.initial().withRip(GuestPrograms.CODE));
        assertEquals(new VcpuExit.Mmio(gpa, false, 1, 0), vcpu.run(), "no memslot: MMIO");
      }
    }
  }
}
