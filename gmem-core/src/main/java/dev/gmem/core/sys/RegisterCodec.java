package dev.gmem.core.sys;

import dev.gmem.api.DescriptorTable;
import dev.gmem.api.Registers;
import dev.gmem.api.Segment;
import dev.gmem.api.SpecialRegisters;
import jnr.ffi.Struct;

/**
 * Copies between the register records of the API and the kernel structs: gmem's vCPUs and the
 * benchmarks' raw vCPUs share one struct layout.
 */
public final class RegisterCodec {
  private RegisterCodec() {}

  public static Registers read(KvmStructs.Regs r) {
    return new Registers(
        r.rax.get(), r.rbx.get(), r.rcx.get(), r.rdx.get(), r.rsi.get(), r.rdi.get(), r.rsp.get(), r.rbp.get(),
        r.r8.get(), r.r9.get(), r.r10.get(), r.r11.get(), r.r12.get(), r.r13.get(), r.r14.get(), r.r15.get(),
        r.rip.get(), r.rflags.get());
  }

  public static void write(Registers v, KvmStructs.Regs r) {
    r.rax.set(v.rax());
    r.rbx.set(v.rbx());
    r.rcx.set(v.rcx());
    r.rdx.set(v.rdx());
    r.rsi.set(v.rsi());
    r.rdi.set(v.rdi());
    r.rsp.set(v.rsp());
    r.rbp.set(v.rbp());
    r.r8.set(v.r8());
    r.r9.set(v.r9());
    r.r10.set(v.r10());
    r.r11.set(v.r11());
    r.r12.set(v.r12());
    r.r13.set(v.r13());
    r.r14.set(v.r14());
    r.r15.set(v.r15());
    r.rip.set(v.rip());
    r.rflags.set(v.rflags());
  }

  public static SpecialRegisters read(KvmStructs.Sregs s) {
    return new SpecialRegisters(
        read(s.cs), read(s.ds), read(s.es), read(s.fs), read(s.gs), read(s.ss), read(s.tr), read(s.ldt),
        read(s.gdt), read(s.idt),
        s.cr0.get(), s.cr2.get(), s.cr3.get(), s.cr4.get(), s.cr8.get(), s.efer.get(), s.apicBase.get());
  }

  /** Writes every field; the interrupt bitmap is cleared so that no interrupt is injected by accident. */
  public static void write(SpecialRegisters v, KvmStructs.Sregs s) {
    write(v.cs(), s.cs);
    write(v.ds(), s.ds);
    write(v.es(), s.es);
    write(v.fs(), s.fs);
    write(v.gs(), s.gs);
    write(v.ss(), s.ss);
    write(v.tr(), s.tr);
    write(v.ldt(), s.ldt);
    write(v.gdt(), s.gdt);
    write(v.idt(), s.idt);
    s.cr0.set(v.cr0());
    s.cr2.set(v.cr2());
    s.cr3.set(v.cr3());
    s.cr4.set(v.cr4());
    s.cr8.set(v.cr8());
    s.efer.set(v.efer());
    s.apicBase.set(v.apicBase());
    for (Struct.Unsigned64 word : s.interruptBitmap) {
      word.set(0L);
    }
  }

  private static Segment read(KvmStructs.Segment s) {
    return new Segment(
        s.base.get(), s.limit.get(), s.selector.get(), s.type.get(), s.present.get() != 0, s.dpl.get(), s.db.get() != 0,
        s.s.get() != 0, s.l.get() != 0, s.g.get() != 0, s.avl.get() != 0, s.unusable.get() != 0);
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
    s.padding.set((short) 0);
  }

  private static DescriptorTable read(KvmStructs.Dtable t) {
    return new DescriptorTable(t.base.get(), t.limit.get());
  }

  private static void write(DescriptorTable v, KvmStructs.Dtable t) {
    t.base.set(v.base());
    t.limit.set(v.limit());
  }

  private static short bit(boolean b) {
    return (short) (b ? 1 : 0);
  }
}
