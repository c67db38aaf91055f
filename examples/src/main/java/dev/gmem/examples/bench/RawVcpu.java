package dev.gmem.examples.bench;

import dev.gmem.api.MapFlags;
import dev.gmem.api.Prot;
import dev.gmem.api.Registers;
import dev.gmem.api.SpecialRegisters;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Kvm;
import dev.gmem.core.sys.KvmStructs;
import dev.gmem.core.sys.Mapping;
import dev.gmem.core.sys.RegisterCodec;
import dev.gmem.core.sys.Sys;
import java.nio.ByteBuffer;

/**
 * A baseline's vCPU: the fd of {@code KVM_CREATE_VCPU} and its mapped {@code struct kvm_run}, run
 * with a bare {@code KVM_RUN} and its exit read straight from kvm_run — no gmem code in between.
 * Registers go in through the kernel structs (untimed setup only).
 */
final class RawVcpu implements AutoCloseable {
  private final Kvm kvm;
  final Fd fd;
  private final Mapping runMapping;
  /** The vCPU's kvm_run (native order). */
  final ByteBuffer run;
  private final KvmStructs.Regs regs;
  private final KvmStructs.Sregs sregs;

  private RawVcpu(Kvm kvm, Fd fd, Mapping runMapping) {
    this.kvm = kvm;
    this.fd = fd;
    this.runMapping = runMapping;
    this.run = Sys.buffer(runMapping.address(), Math.toIntExact(runMapping.length()));
    this.regs = KvmStructs.allocate(kvm.sys(), new KvmStructs.Regs(kvm.sys().runtime()));
    this.sregs = KvmStructs.allocate(kvm.sys(), new KvmStructs.Sregs(kvm.sys().runtime()));
  }

  static RawVcpu create(Kvm kvm, Fd device, Fd vm, int id) {
    int size = kvm.vcpuMmapSize(device);
    Fd fd = kvm.createVcpu(vm, id);
    try {
      return new RawVcpu(kvm, fd, new Mapping(kvm.sys(), kvm.sys().mmap(0, size, Prot.READ_WRITE, MapFlags.SHARED, fd.get(), 0), size));
    } catch (RuntimeException e) {
      fd.close();
      throw e;
    }
  }

  /** {@code KVM_RUN}; the exit reason from kvm_run. */
  int run() {
    kvm.run(fd);
    return run.getInt(Kvm.Run.EXIT_REASON);
  }

  /** KVM_SET_SREGS with {@code special} applied to the vCPU's current special registers, then KVM_SET_REGS. */
  void load(java.util.function.UnaryOperator<SpecialRegisters> special, Registers r) {
    kvm.getSregs(fd, sregs);
    RegisterCodec.write(special.apply(RegisterCodec.read(sregs)), sregs); // clears the interrupt bitmap: nothing injected
    kvm.setSregs(fd, sregs);
    RegisterCodec.write(r, regs);
    kvm.setRegs(fd, regs);
  }

  @Override
  public void close() {
    runMapping.close();
    fd.close();
  }
}
