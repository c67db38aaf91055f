package dev.gmem.core.vm;

import static dev.gmem.core.conformance.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Registers;
import dev.gmem.api.Segment;
import dev.gmem.api.SpecialRegisters;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import dev.gmem.core.vcpu.GuestPrograms;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * Intra-host migration of a real KVM guest: it runs on VM A, the VMM links A's file to VM B, binds
 * the same layout, moves the context and continues the guest on a vCPU of B with A's registers.
 * The guest on B reads what it wrote on A: the memory is the same, nothing was copied. On this
 * 6.18 host B's memslot is plain user memory over the inode's guest view (the kernel cannot link),
 * so this also proves that the kernel's zap of that view reaches B's guest.
 */
class LinkGuestTest {
  static final long PAGE = 4096;
  static final long MEM = 0x10000;

  private static VcpuExit.Io out(int port, int value) {
    return new VcpuExit.Io(true, port, 1, 1, new byte[] {(byte) value});
  }

  @Test
  void aRealGuestContinuesOnTheDestinationVmWithItsMemoryIntact() {
    assumeTrue(Files.exists(Path.of("/dev/kvm")), "host has no /dev/kvm: migrating a real guest needs real KVM");
    try (GmemRuntime rt = Backends.open("kvm")) {
      Vm a = rt.createVm(VmType.DEFAULT);
      GuestMemFile fa = a.createGuestMemFile(MEM, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      try (HostMapping ma = fa.map(); Vcpu va = a.createVcpu(0)) {
        a.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, MEM, fa, 0);
        ma.write(GuestPrograms.CODE, GuestPrograms.REAL_MODE_HOP, 0, GuestPrograms.REAL_MODE_HOP.length);
        ma.putByte(GuestPrograms.DATA, (byte) 0x41);
        va.setSpecialRegisters(va.specialRegisters().withCodeSegment(Segment.realMode(0, true)).withDataSegments(Segment.realMode(0, false)));
        va.setRegisters(Registers.initial().withRip(GuestPrograms.CODE));
        assertEquals(out(0x10, 0x42), va.run(), "the guest on A wrote 0x42 at 0x2001");
        assertEquals(new VcpuExit.Hlt(), va.run());

        Vm b = rt.createVm(VmType.DEFAULT);
        GuestMemFile fb = b.linkGuestMemFile(fa, 0);
        b.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, MEM, fb, 0);
        try (Vcpu vb = b.createVcpu(0)) {
          expect(Errno.EINVAL, vb::run);
          Registers regs = va.registers();
          SpecialRegisters sregs = va.specialRegisters();
          b.moveEncryptionContextFrom(a);
          vb.setSpecialRegisters(sregs);
          vb.setRegisters(regs);

          assertEquals(out(GuestPrograms.HOP_PORT, 0x42), vb.run(), "the guest on B read what it wrote on A");
          assertEquals(new VcpuExit.Hlt(), vb.run());
          assertEquals(0x43, ma.getByte(GuestPrograms.DATA + 1), "and wrote memory A's file still shows");
          expect(Errno.EIO, va::run);
          expect(Errno.EIO, va::registers);

          fa.punchHole(GuestPrograms.DATA, PAGE); // through the source's file
          assertEquals(out(GuestPrograms.HOP_PORT, 0), vb.run(), "B's guest mapping of the page was zapped with it");
          assertEquals(new VcpuExit.Hlt(), vb.run());

          fa.close();
          a.close();
          assertEquals(out(GuestPrograms.HOP_PORT, 1), vb.run(), "closing the source VM and its file frees nothing B uses");
          assertEquals(new VcpuExit.Hlt(), vb.run());
        }
      }
    }
  }
}
