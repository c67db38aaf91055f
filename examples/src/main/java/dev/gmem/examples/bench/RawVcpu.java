package dev.gmem.examples.bench;

import dev.gmem.api.DescriptorTable;
import dev.gmem.api.MapFlags;
import dev.gmem.api.Prot;
import dev.gmem.api.Registers;
import dev.gmem.api.Segment;
import dev.gmem.api.SpecialRegisters;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Kvm;
import dev.gmem.core.sys.KvmStructs;
import dev.gmem.core.sys.Mapping;
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
    SpecialRegisters s = special.apply(new SpecialRegisters(read(sregs.cs), read(sregs.ds), read(sregs.es), read(sregs.fs),
        read(sregs.gs), read(sregs.ss), read(sregs.tr), read(sregs.ldt), read(sregs.gdt), read(sregs.idt), sregs.cr0.get(),
        sregs.cr2.get(), sregs.cr3.get(), sregs.cr4.get(), sregs.cr8.get(), sregs.efer.get(), sregs.apicBase.get()));
    write(s.cs(), sregs.cs);
    write(s.ds(), sregs.ds);
    write(s.es(), sregs.es);
    write(s.fs(), sregs.fs);
    write(s.gs(), sregs.gs);
    write(s.ss(), sregs.ss);
    write(s.tr(), sregs.tr);
    write(s.ldt(), sregs.ldt);
    sregs.gdt.base.set(s.gdt().base());
    sregs.gdt.limit.set(s.gdt().limit());
    sregs.idt.base.set(s.idt().base());
    sregs.idt.limit.set(s.idt().limit());
    sregs.cr0.set(s.cr0());
    sregs.cr3.set(s.cr3());
    sregs.cr4.set(s.cr4());
    sregs.efer.set(s.efer());
    for (jnr.ffi.Struct.Unsigned64 word : sregs.interruptBitmap) {
      word.set(0L); // nothing injected
    }
    kvm.setSregs(fd, sregs);
    kvm.getRegs(fd, regs);
    regs.rax.set(r.rax());
    regs.rbx.set(r.rbx());
    regs.rcx.set(r.rcx());
    regs.rdx.set(r.rdx());
    regs.rsi.set(r.rsi());
    regs.rdi.set(r.rdi());
    regs.rsp.set(r.rsp());
    regs.rbp.set(r.rbp());
    regs.r8.set(r.r8());
    regs.r9.set(r.r9());
    regs.r10.set(r.r10());
    regs.r11.set(r.r11());
    regs.r12.set(r.r12());
    regs.r13.set(r.r13());
    regs.r14.set(r.r14());
    regs.r15.set(r.r15());
    regs.rip.set(r.rip());
    regs.rflags.set(r.rflags());
    kvm.setRegs(fd, regs);
  }

  private static Segment read(KvmStructs.Segment s) {
    return new Segment(s.base.get(), s.limit.get(), s.selector.get(), s.type.get(), s.present.get() != 0, s.dpl.get(),
        s.db.get() != 0, s.s.get() != 0, s.l.get() != 0, s.g.get() != 0, s.avl.get() != 0, s.unusable.get() != 0);
  }

  private static DescriptorTable read(KvmStructs.Dtable t) {
    return new DescriptorTable(t.base.get(), t.limit.get());
  }

  private static void write(Segment v, KvmStructs.Segment s) {
    s.base.set(v.base());
    s.limit.set(v.limit());
    s.selector.set(v.selector());
    s.type.set((short) v.type());
    s.present.set(bit(v.present()));
    s.dpl.set((short) v.dpl());
    s.db.set(bit(v.db()));
    s.s.set(bit(v.s()));
    s.l.set(bit(v.l()));
    s.g.set(bit(v.g()));
    s.avl.set(bit(v.avl()));
    s.unusable.set(bit(v.unusable()));
  }

  private static short bit(boolean b) {
    return (short) (b ? 1 : 0);
  }

  @Override
  public void close() {
    runMapping.close();
    fd.close();
  }
}
