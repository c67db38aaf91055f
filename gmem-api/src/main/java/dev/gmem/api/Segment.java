package dev.gmem.api;

/**
 * One segment register with its hidden descriptor state ({@code struct kvm_segment}). KVM loads
 * these fields directly, so a guest can start in protected or long mode without a GDT.
 *
 * @param base     linear base address
 * @param limit    segment limit in bytes, an unsigned 32-bit value (already scaled when {@code g} is set)
 * @param selector the visible selector, 0..0xffff
 * @param type     descriptor type field, 0..15 (e.g. 3 = read/write data, accessed; 11 = execute/read code, accessed)
 * @param present  P bit
 * @param dpl      descriptor privilege level, 0..3
 * @param db       D/B bit: 32-bit default operand size (code) or big stack (data)
 * @param s        S bit: code/data rather than system segment
 * @param l        L bit: 64-bit code segment
 * @param g        granularity bit
 * @param avl      available-for-software bit
 * @param unusable KVM's "segment not usable" marker (a null selector in protected mode)
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public record Segment(
    long base,
    long limit,
    int selector,
    int type,
    boolean present,
    int dpl,
    boolean db,
    boolean s,
    boolean l,
    boolean g,
    boolean avl,
    boolean unusable) {

  /** Type of an execute/read code segment, accessed. */
  public static final int TYPE_CODE = 11;
  /** Type of a read/write data segment, accessed. */
  public static final int TYPE_DATA = 3;
  /** Type of a busy 32/64-bit TSS (the only kind VM entry accepts in TR). */
  public static final int TYPE_TSS_BUSY = 11;
  /** Type of an LDT. */
  public static final int TYPE_LDT = 2;

  public Segment {
    if (limit < 0 || limit > 0xffff_ffffL) {
      throw new IllegalArgumentException("limit is a u32: 0x" + Long.toHexString(limit));
    }
    if (selector < 0 || selector > 0xffff) {
      throw new IllegalArgumentException("selector is a u16: 0x" + Integer.toHexString(selector));
    }
    if (type < 0 || type > 15) {
      throw new IllegalArgumentException("type is 4 bits: " + type);
    }
    if (dpl < 0 || dpl > 3) {
      throw new IllegalArgumentException("dpl is 0..3: " + dpl);
    }
  }

  /**
   * A real-mode segment as the CPU loads it from {@code selector}: base = selector × 16, 64 KiB
   * limit, present, ring 0.
   */
  public static Segment realMode(int selector, boolean code) {
    return new Segment((long) selector << 4, 0xffff, selector, code ? TYPE_CODE : TYPE_DATA, true, 0, false, true, false, false, false, false);
  }

  /** A flat 4 GiB ring-0 code segment with 32-bit default operand size. */
  public static Segment flat32Code(int selector) {
    return new Segment(0, 0xffff_ffffL, selector, TYPE_CODE, true, 0, true, true, false, true, false, false);
  }

  /** A flat 4 GiB ring-0 read/write data segment (big stack). */
  public static Segment flat32Data(int selector) {
    return new Segment(0, 0xffff_ffffL, selector, TYPE_DATA, true, 0, true, true, false, true, false, false);
  }

  /** A ring-0 64-bit code segment (L set, D clear). */
  public static Segment flat64Code(int selector) {
    return new Segment(0, 0xffff_ffffL, selector, TYPE_CODE, true, 0, false, true, true, true, false, false);
  }

  public Segment withBase(long newBase) {
    return new Segment(newBase, limit, selector, type, present, dpl, db, s, l, g, avl, unusable);
  }

  public Segment withLimit(long newLimit) {
    return new Segment(base, newLimit, selector, type, present, dpl, db, s, l, g, avl, unusable);
  }

  public Segment withSelector(int newSelector) {
    return new Segment(base, limit, newSelector, type, present, dpl, db, s, l, g, avl, unusable);
  }

  @Override
  public String toString() {
    return String.format(
        "Segment[sel=0x%x base=0x%x limit=0x%x type=%d%s dpl=%d%s%s%s%s%s%s]",
        selector, base, limit, type, present ? " P" : "", dpl, db ? " DB" : "", s ? " S" : "", l ? " L" : "", g ? " G" : "",
        avl ? " AVL" : "", unusable ? " unusable" : "");
  }
}
