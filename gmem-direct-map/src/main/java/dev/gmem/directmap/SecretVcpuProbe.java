package dev.gmem.directmap;

import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Registers;
import dev.gmem.api.Segment;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import java.nio.ByteBuffer;

/**
 * Whether a real vCPU runs on NO_DIRECT_MAP memory, found by running one: a DEFAULT VM, a
 * NO_DIRECT_MAP|WRITE file populated with {@code write()} with a real-mode guest that reports a
 * byte on an I/O port and halts, bound through its {@code userspace_addr}. Where KVM resolves
 * guest faults with GUP on {@code userspace_addr} the run fails (EFAULT), since GUP cannot reach
 * secret memory; where it maps the pages another way (this host's kvm_pvm shadow MMU did) the
 * guest runs. On a kernel that takes NO_DIRECT_MAP itself the guest runs on the real guest_memfd.
 */
public final class SecretVcpuProbe {
  /** The port the probe guest reports on, and the byte. */
  public static final int PORT = 0x10;
  public static final int VALUE = 0x61;
  private static final long CODE = 0x1000;
  private static final long SIZE = 64 << 10;

  private SecretVcpuProbe() {}

  /** What the probe found: whether the guest ran, and what happened. */
  public record Result(boolean runs, String detail) {}

  /** Runs the probe on {@code rt} (needs the direct-map feature enabled and a backend with vCPUs). */
  public static Result run(GmemRuntime rt) {
    Vm vm = null;
    try {
      vm = rt.createVm(VmType.DEFAULT);
      try (GuestMemFile f = vm.createGuestMemFile(SIZE, GmemFlags.MMAP | GmemFlags.INIT_SHARED | GmemFlags.NO_DIRECT_MAP | GmemFlags.WRITE)) {
        ByteBuffer page = ByteBuffer.allocate(4096);
        page.put(new byte[] {(byte) 0xb0, (byte) VALUE, (byte) 0xe6, (byte) PORT, (byte) 0xf4}); // mov al,V; out P,al; hlt
        page.clear();
        f.write(CODE, page);
        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, SIZE, f, 0);
        try (Vcpu cpu = vm.createVcpu(0)) {
          cpu.setSpecialRegisters(cpu.specialRegisters()
              .withCodeSegment(Segment.realMode(0, true))
              .withDataSegments(Segment.realMode(0, false)));
          cpu.setRegisters(Registers.initial().withRip(CODE));
          VcpuExit exit = cpu.run();
          if (exit instanceof VcpuExit.Io io && io.out() && io.port() == PORT && io.value() == VALUE) {
            return new Result(true, "a real vCPU fetched and ran guest code from secret memory (I/O exit on port 0x"
                + Integer.toHexString(PORT) + " with 0x" + Integer.toHexString(VALUE) + ")");
          }
          return new Result(false, "a real vCPU on secret memory exited with " + exit);
        } finally {
          vm.deleteMemoryRegion(0);
        }
      }
    } catch (GmemException e) {
      return new Result(false, "no real vCPU on secret memory: " + e.errno() + " " + e.getMessage());
    } finally {
      if (vm != null) {
        vm.close();
      }
    }
  }
}
