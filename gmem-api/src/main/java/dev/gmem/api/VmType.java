package dev.gmem.api;

/**
 * VM types. The number is the kernel's {@code KVM_CREATE_VM} type where one exists (x86:
 * {@code KVM_X86_*_VM}); a type the host kernel does not offer runs over a real DEFAULT VM with
 * its rules applied by gmem and the type's arch plugin.
 *
 * <p>EXPERIMENTAL: new types arrive with new arches (SEV, SEV-ES, Arm CCA; pKVM has no x86
 * number), and a switch over the enum without a default breaks on each.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.1")
public enum VmType {
  /** {@code KVM_X86_DEFAULT_VM}: no private memory. */
  DEFAULT(0, false),
  /** {@code KVM_X86_SW_PROTECTED_VM}: private memory in software, no hardware protection. */
  SW_PROTECTED(1, true),
  /** {@code KVM_X86_SNP_VM}: AMD SEV-SNP. */
  SNP(4, true),
  /** {@code KVM_X86_TDX_VM}: Intel TDX. */
  TDX(5, true),
  /** Arm pKVM protected VM ({@code KVM_VM_TYPE_ARM_PROTECTED}). */
  PKVM(-1, true);

  private final int kvmType;
  private final boolean privateMemory;

  VmType(int kvmType, boolean privateMemory) {
    this.kvmType = kvmType;
    this.privateMemory = privateMemory;
  }

  /** The x86 {@code KVM_CREATE_VM} type number, or -1 where x86 has none. */
  public int kvmType() {
    return kvmType;
  }

  /** Whether VMs of this type have private memory (and so cannot use INIT_SHARED in 6.18). */
  public boolean hasPrivateMemory() {
    return privateMemory;
  }
}
