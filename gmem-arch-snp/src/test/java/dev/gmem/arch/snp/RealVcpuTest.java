package dev.gmem.arch.snp;

import static dev.gmem.arch.snp.SnpVms.PAGE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestCall;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Registers;
import dev.gmem.api.Segment;
import dev.gmem.api.Shareability;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * An SNP VM over the real kernel: a real DEFAULT KVM VM and a real vCPU in real mode, whose
 * accesses are shared (6.18 has no C-bit for it). Its read of a private page comes back as the
 * memory-fault exit; once the guest (on the software vCPU) has shared the page with a page state
 * change and the VMM converted it, the very same access completes with what the guest wrote.
 */
class RealVcpuTest {
  static final long CODE = 0x1000;
  static final long DATA = 0x2000;
  /** mov al, [0x2000]; out 0x10, al; hlt. */
  static final byte[] PROGRAM = {(byte) 0xa0, 0x00, 0x20, (byte) 0xe6, 0x10, (byte) 0xf4};

  @Test
  void aRealVcpusSharedAccessToAPrivatePageExitsUntilTheGuestSharesIt() {
    assumeTrue(Files.exists(Path.of("/dev/kvm")), "no /dev/kvm on this host");
    try (GmemRuntime rt = SnpVms.runtime("kvm")) {
      Vm vm = rt.createVm(VmType.SNP);
      GuestMemFile f = vm.createGuestMemFile(4 * PAGE, GmemFlags.MMAP);
      f.setShareability(CODE, PAGE, Shareability.SHARED); // the VMM shares the code page
      try (HostMapping m = f.map()) {
        m.write(CODE, PROGRAM, 0, PROGRAM.length);
      }
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, 4 * PAGE, f, 0);
      vm.finalizeLaunch();
      assertEquals(SnpArch.PVALIDATE_SUCCESS, SnpGuest.pvalidate(vm.softwareVcpu(), DATA, false, true));
      vm.softwareVcpu().writeLong(DATA, 0x77, true);

      try (Vcpu cpu = vm.createVcpu(0)) {
        cpu.setSpecialRegisters(cpu.specialRegisters().withCodeSegment(Segment.realMode(0, true)).withDataSegments(Segment.realMode(0, false)));
        cpu.setRegisters(Registers.initial().withRip(CODE));
        VcpuExit.MemoryFault refused = new VcpuExit.MemoryFault(0, DATA, PAGE);
        assertEquals(refused, cpu.run(), "a shared access to a private page");

        assertEquals(SnpArch.PVALIDATE_SUCCESS, SnpGuest.pvalidate(vm.softwareVcpu(), DATA, false, false));
        GuestCall psc = SnpGuest.pageStateChangeMsr(vm.softwareVcpu(), DATA, PageStateChange.OP_SHARED);
        f.setShareability(psc.pendingExit().arg(0), PAGE, Shareability.SHARED);
        psc.complete(0);
        assertEquals(PageStateChange.GHCB_MSR_PSC_RESP, psc.result().value());
        vm.softwareVcpu().writeLong(DATA, 0x42, false);

        assertEquals(new VcpuExit.Io(true, 0x10, 1, 1, new byte[] {0x42}), cpu.run(), "the same access completes");
        assertEquals(new VcpuExit.Hlt(), cpu.run());
      }
    }
  }
  /**
   * What the real-vCPU path cannot do on this host, pinned down: an access to a private page the
   * guest has not validated raises #VC on the software vCPU only when it is private (C-bit set).
   * The real vCPU's access carries no C-bit (a DEFAULT KVM VM has none; in real mode there is no
   * page table to hold one), so gmem sees a shared access, and a shared access to a private page
   * is the memory-fault exit before any validation check: no #VC is counted.
   */
  @Test
  void aRealVcpusAccessToAnUnvalidatedPrivatePageIsAMemoryFaultNotAVc() {
    assumeTrue(Files.exists(Path.of("/dev/kvm")), "no /dev/kvm on this host");
    try (GmemRuntime rt = SnpVms.runtime("kvm")) {
      Vm vm = rt.createVm(VmType.SNP);
      GuestMemFile f = vm.createGuestMemFile(4 * PAGE, GmemFlags.MMAP);
      f.setShareability(CODE, PAGE, Shareability.SHARED);
      try (HostMapping m = f.map()) {
        m.write(CODE, PROGRAM, 0, PROGRAM.length);
      }
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, 4 * PAGE, f, 0);
      vm.finalizeLaunch();
      SnpArch snp = vm.arch(SnpArch.class).orElseThrow();
      VcpuExit.GuestException vc = (VcpuExit.GuestException) vm.softwareVcpu().read(DATA, new byte[1], 0, 1, true);
      assertEquals(SnpArch.VC_PAGE_NOT_VALIDATED, vc.errorCode(), "the software vCPU's private access to the unvalidated page");
      long vcs = snp.vcEvents();
      try (Vcpu cpu = vm.createVcpu(0)) {
        cpu.setSpecialRegisters(cpu.specialRegisters().withCodeSegment(Segment.realMode(0, true)).withDataSegments(Segment.realMode(0, false)));
        cpu.setRegisters(Registers.initial().withRip(CODE));
        assertEquals(new VcpuExit.MemoryFault(0, DATA, PAGE), cpu.run(), "the real vCPU's (shared) access to the same page");
      }
      assertEquals(vcs, snp.vcEvents(), "no #VC from the real vCPU");
    }
  }
}
