package dev.gmem.core.conformance;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Registers;
import dev.gmem.api.Segment;
import dev.gmem.api.Shareability;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.convert.TestRuntimes;
import dev.gmem.core.vcpu.GuestPrograms;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * One access-kind rule per VM type, on both vCPU paths and the same pages. On SW_PROTECTED the
 * kernel takes the kind of a guest access from the page's attributes ({@code kvm_mmu_page_fault}
 * sets PFERR_PRIVATE_ACCESS from {@code kvm_mem_is_private}), so no access is a mismatch; a DEFAULT
 * VM has no private memory, so every access is shared and nothing is prepared. The software vCPU's
 * {@code privateAccess} argument is the access's own bit, which only arches that carry one (TDX's
 * shared bit, SNP's C-bit) look at. On the kvm backend a real vCPU reads the same page and must see
 * what the software vCPU saw.
 */
class AccessKindTest {
  static final long PAGE = 4096;
  /** Where {@link GuestPrograms#REAL_MODE_REPORT_BYTE_AT_64K} reads. */
  static final long GPA = 0x10000;
  static final int GM = Memslot.GUEST_MEMFD;
  /** KVM never reuses a vCPU id within a VM, closed or not. */
  private static final java.util.concurrent.atomic.AtomicInteger VCPU_IDS = new java.util.concurrent.atomic.AtomicInteger();

  static Stream<String> backends() {
    return Backends.names();
  }

  @ParameterizedTest
  @MethodSource("backends")
  void swProtectedTakesTheAccessKindFromTheAttributes(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      try (GuestMemFile f = vm.createGuestMemFile(PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED)) {
        vm.setMemoryRegion(1, GM, GPA, PAGE, f, 0);
        SoftwareVcpu sw = vm.softwareVcpu();
        f.setShareability(0, PAGE, Shareability.PRIVATE);

        assertNull(sw.write(GPA, new byte[] {0x5a}, 0, 1, true));
        byte[] b = new byte[1];
        assertNull(sw.read(GPA, b, 0, 1, false), "the page is private, so the access is private: no mismatch exit");
        assertEquals(0x5a, b[0]);
        assertNull(sw.write(GPA, new byte[] {0x6b}, 0, 1, false));
        assertEquals(0x6b, realVcpuByteAt64K(rt, vm), "the real vCPU reads what the software vCPU wrote");

        f.setShareability(0, PAGE, Shareability.SHARED);
        assertNull(sw.write(GPA, new byte[] {0x7c}, 0, 1, true), "the page is shared, so the access is shared");
        try (HostMapping m = f.map()) {
          assertEquals(0x7c, m.getByte(0));
        }
        assertEquals(0x7c, realVcpuByteAt64K(rt, vm));
      }
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void defaultVmAccessesAreSharedWhateverTheirBit(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      // Without INIT_SHARED the host may not fault the pages; a DEFAULT guest still reaches them.
      try (GuestMemFile f = vm.createGuestMemFile(PAGE, GmemFlags.MMAP); HostMapping m = f.map()) {
        vm.setMemoryRegion(1, GM, GPA, PAGE, f, 0);
        SoftwareVcpu sw = vm.softwareVcpu();
        assertNull(sw.write(GPA, new byte[] {0x11, 0x22}, 0, 2, true));
        byte[] b = new byte[2];
        assertNull(sw.read(GPA, b, 0, 2, false), "a DEFAULT VM has no private accesses, hence no mismatches");
        assertArrayEquals(new byte[] {0x11, 0x22}, b);
        assertNull(sw.read(GPA, b, 0, 2, true));
        assertArrayEquals(new byte[] {0x11, 0x22}, b);
        assertEquals(Errno.EACCES, assertThrows(GmemException.class, () -> m.getByte(0)).errno(), "the host still may not");
        assertEquals(0x11, realVcpuByteAt64K(rt, vm));
      }
    }
  }

  /**
   * Where accesses carry their own private bit (a TDX/SNP-like arch), a shared access to a private
   * page exits on both paths. The real vCPU of a 6.18 KVM makes only shared accesses: the kernel
   * hands the access back, gmem's fault path turns it into the same exit, and after the VMM
   * converts, the next run completes the very access.
   */
  @ParameterizedTest
  @MethodSource("backends")
  void whereAccessesCarryTheirOwnBitBothPathsExitOnAMismatch(String backend) {
    try (GmemRuntime rt = TestRuntimes.withAccessBitArch(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      try (GuestMemFile f = vm.createGuestMemFile(PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
          GuestMemFile low = vm.createGuestMemFile(GPA, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
          HostMapping lowMap = low.map()) {
        vm.setMemoryRegion(1, GM, GPA, PAGE, f, 0);
        SoftwareVcpu sw = vm.softwareVcpu();
        assertNull(sw.write(GPA, new byte[] {0x42}, 0, 1, false));
        f.setShareability(0, PAGE, Shareability.PRIVATE);
        VcpuExit.MemoryFault mismatch = new VcpuExit.MemoryFault(0, GPA, PAGE);
        assertEquals(mismatch, sw.read(GPA, new byte[1], 0, 1, false));
        if (!backend.equals("kvm")) {
          return;
        }
        lowMap.write(GuestPrograms.CODE, GuestPrograms.REAL_MODE_REPORT_BYTE_AT_64K, 0, GuestPrograms.REAL_MODE_REPORT_BYTE_AT_64K.length);
        vm.setMemoryRegion(0, GM, 0, GPA, low, 0);
        try (Vcpu cpu = vm.createVcpu(VCPU_IDS.getAndIncrement())) {
          cpu.setSpecialRegisters(cpu.specialRegisters().withCodeSegment(Segment.realMode(0, true)).withDataSegments(Segment.realMode(0, false)));
          cpu.setRegisters(Registers.initial().withRip(GuestPrograms.CODE));
          assertEquals(mismatch, cpu.run(), "the real vCPU's shared access to the private page");
          assertEquals(mismatch, cpu.run(), "still private: the access exits again");
          f.setShareability(0, PAGE, Shareability.SHARED);
          assertEquals(new VcpuExit.Io(true, 0x10, 1, 1, new byte[] {0x42}), cpu.run(), "converted: the same access completes");
          assertEquals(new VcpuExit.Hlt(), cpu.run());
        }
      }
    }
  }

  /**
   * Runs {@link GuestPrograms#REAL_MODE_REPORT_BYTE_AT_64K} on a real vCPU of {@code vm} (code in
   * slot 0 at GPA 0) and returns the byte it reported; -1 on the memfd backend, which has no vCPU.
   */
  static int realVcpuByteAt64K(GmemRuntime rt, Vm vm) {
    if (!rt.backend().name().equals("kvm")) {
      return sameAsSoftware(vm);
    }
    try (GuestMemFile low = vm.createGuestMemFile(GPA, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
        HostMapping lowMap = low.map();
        Vcpu cpu = vm.createVcpu(VCPU_IDS.getAndIncrement())) {
      lowMap.write(GuestPrograms.CODE, GuestPrograms.REAL_MODE_REPORT_BYTE_AT_64K, 0, GuestPrograms.REAL_MODE_REPORT_BYTE_AT_64K.length);
      vm.setMemoryRegion(0, GM, 0, GPA, low, 0);
      try {
        cpu.setSpecialRegisters(cpu.specialRegisters().withCodeSegment(Segment.realMode(0, true)).withDataSegments(Segment.realMode(0, false)));
        cpu.setRegisters(Registers.initial().withRip(GuestPrograms.CODE));
        VcpuExit exit = cpu.run();
        if (!(exit instanceof VcpuExit.Io)) {
          throw new AssertionError("the real vCPU did not read the page: " + exit);
        }
        assertEquals(new VcpuExit.Hlt(), cpu.run());
        return ((VcpuExit.Io) exit).data()[0];
      } finally {
        vm.setMemoryRegion(0, GM, 0, 0, null, 0);
      }
    }
  }

  /** Without a real vCPU, the software vCPU's shared read stands in (the memfd backend). */
  private static int sameAsSoftware(Vm vm) {
    byte[] b = new byte[1];
    VcpuExit e = vm.softwareVcpu().read(GPA, b, 0, 1, false);
    if (e != null) {
      throw new AssertionError("shared read exited: " + e);
    }
    return b[0];
  }
}
