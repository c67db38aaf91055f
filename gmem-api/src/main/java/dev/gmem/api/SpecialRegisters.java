package dev.gmem.api;

import java.util.Objects;

/**
 * Segment, descriptor-table and control registers of a vCPU ({@code struct kvm_sregs}). The
 * kernel's pending-interrupt bitmap is not part of this value: reading omits it and writing
 * passes an empty one (no interrupt is injected), which is what a VMM without an in-kernel
 * interrupt controller wants.
 *
 * <p>Start from the vCPU's current value ({@link Vcpu#specialRegisters()}) and change what the
 * guest needs with the {@code with...} methods; for a real-mode program at a known address:
 * {@code sregs.withCodeSegment(Segment.realMode(0, true)).withDataSegments(Segment.realMode(0, false))}.
 *
 * @param apicBase the {@code IA32_APIC_BASE} MSR value
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public record SpecialRegisters(
    Segment cs,
    Segment ds,
    Segment es,
    Segment fs,
    Segment gs,
    Segment ss,
    Segment tr,
    Segment ldt,
    DescriptorTable gdt,
    DescriptorTable idt,
    long cr0,
    long cr2,
    long cr3,
    long cr4,
    long cr8,
    long efer,
    long apicBase) {

  /** CR0.PE: protected mode. */
  public static final long CR0_PE = 1L;
  /** CR0.PG: paging. */
  public static final long CR0_PG = 1L << 31;
  /** CR4.PAE: physical address extension, required for long mode. */
  public static final long CR4_PAE = 1L << 5;
  /** EFER.LME: long mode enable. */
  public static final long EFER_LME = 1L << 8;
  /** EFER.LMA: long mode active (set together with LME when loading a long-mode state). */
  public static final long EFER_LMA = 1L << 10;

  public SpecialRegisters {
    Objects.requireNonNull(cs, "cs");
    Objects.requireNonNull(ds, "ds");
    Objects.requireNonNull(es, "es");
    Objects.requireNonNull(fs, "fs");
    Objects.requireNonNull(gs, "gs");
    Objects.requireNonNull(ss, "ss");
    Objects.requireNonNull(tr, "tr");
    Objects.requireNonNull(ldt, "ldt");
    Objects.requireNonNull(gdt, "gdt");
    Objects.requireNonNull(idt, "idt");
  }

  public SpecialRegisters withCodeSegment(Segment segment) {
    return new SpecialRegisters(segment, ds, es, fs, gs, ss, tr, ldt, gdt, idt, cr0, cr2, cr3, cr4, cr8, efer, apicBase);
  }

  /** Loads {@code segment} into DS, ES, FS, GS and SS, as a flat-model guest does. */
  public SpecialRegisters withDataSegments(Segment segment) {
    return new SpecialRegisters(cs, segment, segment, segment, segment, segment, tr, ldt, gdt, idt, cr0, cr2, cr3, cr4, cr8, efer, apicBase);
  }

  public SpecialRegisters withDs(Segment segment) {
    return new SpecialRegisters(cs, segment, es, fs, gs, ss, tr, ldt, gdt, idt, cr0, cr2, cr3, cr4, cr8, efer, apicBase);
  }

  public SpecialRegisters withEs(Segment segment) {
    return new SpecialRegisters(cs, ds, segment, fs, gs, ss, tr, ldt, gdt, idt, cr0, cr2, cr3, cr4, cr8, efer, apicBase);
  }

  public SpecialRegisters withSs(Segment segment) {
    return new SpecialRegisters(cs, ds, es, fs, gs, segment, tr, ldt, gdt, idt, cr0, cr2, cr3, cr4, cr8, efer, apicBase);
  }

  public SpecialRegisters withTr(Segment segment) {
    return new SpecialRegisters(cs, ds, es, fs, gs, ss, segment, ldt, gdt, idt, cr0, cr2, cr3, cr4, cr8, efer, apicBase);
  }

  public SpecialRegisters withGdt(DescriptorTable table) {
    return new SpecialRegisters(cs, ds, es, fs, gs, ss, tr, ldt, table, idt, cr0, cr2, cr3, cr4, cr8, efer, apicBase);
  }

  public SpecialRegisters withIdt(DescriptorTable table) {
    return new SpecialRegisters(cs, ds, es, fs, gs, ss, tr, ldt, gdt, table, cr0, cr2, cr3, cr4, cr8, efer, apicBase);
  }

  public SpecialRegisters withCr0(long value) {
    return new SpecialRegisters(cs, ds, es, fs, gs, ss, tr, ldt, gdt, idt, value, cr2, cr3, cr4, cr8, efer, apicBase);
  }

  public SpecialRegisters withCr3(long value) {
    return new SpecialRegisters(cs, ds, es, fs, gs, ss, tr, ldt, gdt, idt, cr0, cr2, value, cr4, cr8, efer, apicBase);
  }

  public SpecialRegisters withCr4(long value) {
    return new SpecialRegisters(cs, ds, es, fs, gs, ss, tr, ldt, gdt, idt, cr0, cr2, cr3, value, cr8, efer, apicBase);
  }

  public SpecialRegisters withEfer(long value) {
    return new SpecialRegisters(cs, ds, es, fs, gs, ss, tr, ldt, gdt, idt, cr0, cr2, cr3, cr4, cr8, value, apicBase);
  }

  @Override
  public String toString() {
    return "SpecialRegisters[cs=" + cs + " ds=" + ds + " es=" + es + " fs=" + fs + " gs=" + gs + " ss=" + ss + " tr=" + tr
        + " ldt=" + ldt + " gdt=" + gdt + " idt=" + idt
        + String.format(" cr0=0x%x cr2=0x%x cr3=0x%x cr4=0x%x cr8=0x%x efer=0x%x apicBase=0x%x]", cr0, cr2, cr3, cr4, cr8, efer, apicBase);
  }
}
