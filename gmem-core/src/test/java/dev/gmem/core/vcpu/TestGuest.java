package dev.gmem.core.vcpu;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.gmem.api.Fallocate;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.MapFlags;
import dev.gmem.api.Prot;
import dev.gmem.api.Registers;
import dev.gmem.api.Segment;
import dev.gmem.api.SpecialRegisters;
import dev.gmem.core.backend.MemoryFds;
import dev.gmem.core.conformance.Backends;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Kvm;
import dev.gmem.core.sys.Mapping;
import dev.gmem.core.sys.Sys;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A real KVM VM with 64 KiB of guest_memfd memory at GPA 0 and one vCPU. The memslot's
 * userspace_addr is the guest_memfd's own shared mapping: on hosts that serve guest accesses
 * through userspace_addr (kvm_pvm) and on those that take them from the file, the guest and
 * {@link #ram} then see the same bytes. Where the kernel has no guest_memfd
 * ({@code KVM_CAP_GUEST_MEMFD} 0) the memory is a memfd bound as plain user memory: these tests
 * are about the vCPU, which is as real either way.
 */
final class TestGuest implements AutoCloseable {
  static final long MEM_SIZE = 0x10000;

  final Sys sys = Sys.load();
  final Kvm kvm = new Kvm(sys);
  final Fd device;
  final Fd vm;
  final Fd gmem;
  final Mapping mapping;
  final ByteBuffer ram;
  final KvmVcpu vcpu;

  /** Skips the calling test where /dev/kvm does not exist; every other failure is a failure. */
  static TestGuest create() {
    assumeTrue(Files.exists(Path.of("/dev/kvm")), "host has no /dev/kvm: vCPU tests need real KVM");
    return new TestGuest();
  }

  private TestGuest() {
    device = kvm.openDevice();
    Fd v = null;
    Fd g = null;
    Mapping m = null;
    try {
      v = kvm.createVm(device, 0);
      boolean guestMemfd = Backends.noKernelGuestMemfd().isEmpty();
      g = guestMemfd ? kvm.createGuestMemfd(v, MEM_SIZE, GmemFlags.MMAP | GmemFlags.INIT_SHARED) : MemoryFds.memfd(sys, MEM_SIZE);
      m = new Mapping(sys, sys.mmap(0, MEM_SIZE, Prot.READ_WRITE, MapFlags.SHARED, g.get(), 0), MEM_SIZE);
      kvm.setUserMemoryRegion2(v, 0, guestMemfd ? Kvm.MEM_GUEST_MEMFD : 0, 0, MEM_SIZE, m.address(), guestMemfd ? g.get() : 0, 0);
      vcpu = KvmVcpu.create(kvm, device, v, 0);
    } catch (RuntimeException e) {
      closeAll(m, g, v, device);
      throw e;
    }
    vm = v;
    gmem = g;
    mapping = m;
    ram = Sys.buffer(mapping.address(), (int) MEM_SIZE);
  }

  void load(long gpa, byte[] bytes) {
    ram.put((int) gpa, bytes);
  }

  /** Real mode with CS = DS = ... = 0 and execution at {@code rip}. */
  void startRealMode(long rip) {
    SpecialRegisters s = vcpu.specialRegisters();
    vcpu.setSpecialRegisters(s.withCodeSegment(Segment.realMode(0, true)).withDataSegments(Segment.realMode(0, false)));
    vcpu.setRegisters(Registers.initial().withRip(rip));
  }

  /** 32-bit protected mode without a GDT: KVM loads the flat descriptors straight into the segment registers. */
  void startProtectedMode(long rip) {
    SpecialRegisters s = vcpu.specialRegisters();
    vcpu.setSpecialRegisters(s.withCr0(s.cr0() | SpecialRegisters.CR0_PE)
        .withCodeSegment(Segment.flat32Code(0x08))
        .withDataSegments(Segment.flat32Data(0x10)));
    vcpu.setRegisters(Registers.initial().withRip(rip));
  }

  /** 64-bit long mode over {@link GuestPrograms#identityPageTables()}, written here. */
  void startLongMode(long rip) {
    for (long[] entry : GuestPrograms.identityPageTables()) {
      ram.putLong((int) entry[0], entry[1]);
    }
    vcpu.setSpecialRegisters(GuestPrograms.longMode(vcpu.specialRegisters()));
    vcpu.setRegisters(Registers.initial().withRip(rip));
  }

  void punchHole(long offset, long length) {
    sys.fallocate(gmem.get(), Fallocate.KEEP_SIZE | Fallocate.PUNCH_HOLE, offset, length);
  }

  @Override
  public void close() {
    closeAll(vcpu, mapping, gmem, vm, device);
  }

  private static void closeAll(AutoCloseable... owners) {
    for (AutoCloseable o : owners) {
      if (o != null) {
        try {
          o.close();
        } catch (Exception e) {
          throw new IllegalStateException(e);
        }
      }
    }
  }
}
