package dev.gmem.directmap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.gmem.api.Errno;
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
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** A real vCPU on NO_DIRECT_MAP (secret) memory, on this host's KVM, while the kernel's GUP cannot reach the pages. */
class SecretVcpuTest {
  private static final long PAGE = 4096;
  private static final long SIZE = 16 * PAGE;
  private static final long CODE = 0x1000;
  private static final long DATA = 0x3000;

  @Test
  void theProbeRunsARealVcpuOnSecretMemory() {
    assumeTrue(Files.exists(Path.of("/dev/kvm")), "no /dev/kvm on this host");
    try (GmemRuntime rt = Runtimes.open("kvm")) {
      SecretVcpuProbe.Result r = Runtimes.feature(rt).realVcpu(rt);
      assertTrue(r.runs(), r.detail());
      assertEquals(0, Runtimes.feature(rt).stats().inodes(), "the probe's inode is gone");
    }
  }

  @Test
  void theProbeSaysNoWhereTheBackendHasNoVcpus() {
    try (GmemRuntime rt = Runtimes.open("memfd")) {
      SecretVcpuProbe.Result r = Runtimes.feature(rt).realVcpu(rt);
      assertFalse(r.runs(), r.detail());
    }
  }

  /** The guest loads a byte from a page populated with write(), adds one and stores it; meanwhile vmsplice of both pages fails. */
  @Test
  void theGuestRunsOnPagesTheKernelCannotReach() {
    assumeTrue(Files.exists(Path.of("/dev/kvm")), "no /dev/kvm on this host");
    try (GmemRuntime rt = Runtimes.open("kvm")) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      try (GuestMemFile f = vm.createGuestMemFile(SIZE, GmemFlags.MMAP | GmemFlags.INIT_SHARED | GmemFlags.NO_DIRECT_MAP | GmemFlags.WRITE);
          HostMapping m = f.map()) {
        ByteBuffer code = ByteBuffer.allocate((int) PAGE);
        // mov al,[0x3000]; inc al; mov [0x3001],al; out 0x10,al; hlt
        code.put(new byte[] {(byte) 0xa0, 0x00, 0x30, (byte) 0xfe, (byte) 0xc0, (byte) 0xa2, 0x01, 0x30, (byte) 0xe6, 0x10, (byte) 0xf4});
        code.clear();
        f.write(CODE, code);
        ByteBuffer data = ByteBuffer.allocate((int) PAGE);
        data.put(0, (byte) 0x41);
        f.write(DATA, data);
        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, SIZE, f, 0);
        try (Vcpu cpu = vm.createVcpu(0)) {
          cpu.setSpecialRegisters(cpu.specialRegisters().withCodeSegment(Segment.realMode(0, true)).withDataSegments(Segment.realMode(0, false)));
          cpu.setRegisters(Registers.initial().withRip(CODE));
          VcpuExit exit = cpu.run();
          assertTrue(exit instanceof VcpuExit.Io io && io.port() == 0x10 && io.value() == 0x42, "guest reported " + exit);
          assertEquals(0x42, m.getByte(DATA + 1), "the guest's store is in the secret page");
          assertEquals(Errno.EFAULT.code(), KernelPaths.vmsplice(m.address() + CODE, PAGE));
          assertEquals(Errno.EFAULT.code(), KernelPaths.vmsplice(m.address() + DATA, PAGE));
        }
        vm.deleteMemoryRegion(0);
      }
    }
  }
}
