package dev.gmem.api;

/**
 * The general-purpose registers, instruction pointer and flags of a vCPU ({@code struct kvm_regs},
 * same order). Values are the full 64-bit registers whatever mode the guest is in.
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public record Registers(
    long rax,
    long rbx,
    long rcx,
    long rdx,
    long rsi,
    long rdi,
    long rsp,
    long rbp,
    long r8,
    long r9,
    long r10,
    long r11,
    long r12,
    long r13,
    long r14,
    long r15,
    long rip,
    long rflags) {

  /** RFLAGS bit 1, which always reads as 1; the kernel sets it on every write. */
  public static final long RFLAGS_FIXED = 0x2;

  /** All registers zero except the fixed RFLAGS bit. */
  public static Registers initial() {
    return builder().build();
  }

  public static Builder builder() {
    return new Builder();
  }

  public Builder toBuilder() {
    return new Builder(this);
  }

  public Registers withRip(long value) {
    return toBuilder().rip(value).build();
  }

  public Registers withRsp(long value) {
    return toBuilder().rsp(value).build();
  }

  public Registers withRflags(long value) {
    return toBuilder().rflags(value).build();
  }

  public Registers withRax(long value) {
    return toBuilder().rax(value).build();
  }

  @Override
  public String toString() {
    return String.format(
        "Registers[rax=0x%x rbx=0x%x rcx=0x%x rdx=0x%x rsi=0x%x rdi=0x%x rsp=0x%x rbp=0x%x r8=0x%x r9=0x%x r10=0x%x"
            + " r11=0x%x r12=0x%x r13=0x%x r14=0x%x r15=0x%x rip=0x%x rflags=0x%x]",
        rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp, r8, r9, r10, r11, r12, r13, r14, r15, rip, rflags);
  }

  /** Mutable builder for changing several registers at once; starts from {@link #initial()} values. */
  @Api(status = Api.Status.STABLE, since = "0.1")
  public static final class Builder {
    private long rax;
    private long rbx;
    private long rcx;
    private long rdx;
    private long rsi;
    private long rdi;
    private long rsp;
    private long rbp;
    private long r8;
    private long r9;
    private long r10;
    private long r11;
    private long r12;
    private long r13;
    private long r14;
    private long r15;
    private long rip;
    private long rflags = RFLAGS_FIXED;

    private Builder() {}

    private Builder(Registers r) {
      rax = r.rax;
      rbx = r.rbx;
      rcx = r.rcx;
      rdx = r.rdx;
      rsi = r.rsi;
      rdi = r.rdi;
      rsp = r.rsp;
      rbp = r.rbp;
      r8 = r.r8;
      r9 = r.r9;
      r10 = r.r10;
      r11 = r.r11;
      r12 = r.r12;
      r13 = r.r13;
      r14 = r.r14;
      r15 = r.r15;
      rip = r.rip;
      rflags = r.rflags;
    }

    public Builder rax(long v) {
      rax = v;
      return this;
    }

    public Builder rbx(long v) {
      rbx = v;
      return this;
    }

    public Builder rcx(long v) {
      rcx = v;
      return this;
    }

    public Builder rdx(long v) {
      rdx = v;
      return this;
    }

    public Builder rsi(long v) {
      rsi = v;
      return this;
    }

    public Builder rdi(long v) {
      rdi = v;
      return this;
    }

    public Builder rsp(long v) {
      rsp = v;
      return this;
    }

    public Builder rbp(long v) {
      rbp = v;
      return this;
    }

    public Builder r8(long v) {
      r8 = v;
      return this;
    }

    public Builder r9(long v) {
      r9 = v;
      return this;
    }

    public Builder r10(long v) {
      r10 = v;
      return this;
    }

    public Builder r11(long v) {
      r11 = v;
      return this;
    }

    public Builder r12(long v) {
      r12 = v;
      return this;
    }

    public Builder r13(long v) {
      r13 = v;
      return this;
    }

    public Builder r14(long v) {
      r14 = v;
      return this;
    }

    public Builder r15(long v) {
      r15 = v;
      return this;
    }

    public Builder rip(long v) {
      rip = v;
      return this;
    }

    public Builder rflags(long v) {
      rflags = v;
      return this;
    }

    public Registers build() {
      return new Registers(rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp, r8, r9, r10, r11, r12, r13, r14, r15, rip, rflags);
    }
  }
}
