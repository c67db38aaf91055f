package dev.gmem.arch.snp;

import dev.gmem.api.Api;

/**
 * {@code SNP_LAUNCH_UPDATE} page types (SEV-SNP Firmware ABI, {@code PAGE_TYPE}; the same numbers
 * as {@code KVM_SEV_SNP_PAGE_TYPE_*}). Passed as {@code Vm.populate}'s {@code flags}. VMSA pages
 * are the firmware's at {@code SNP_LAUNCH_FINISH} and cannot be populated (EINVAL, as in KVM).
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public enum PageType {
  /** Copied and measured: CONTENTS = SHA-384 of the page. */
  NORMAL(1),
  /** Never populated by the VMM: the firmware measures it with each vCPU's state at launch finish. */
  VMSA(2),
  /** Zeroed by the firmware; measured with zero CONTENTS; the source is ignored. */
  ZERO(3),
  /** Copied, measured with zero CONTENTS (only its GPA and type enter the digest). */
  UNMEASURED(4),
  /** Filled by the firmware with the guest's secrets; measured with zero CONTENTS. */
  SECRETS(5),
  /** A CPUID table the firmware checks; measured with zero CONTENTS; a rejected one is corrected and copied back. */
  CPUID(6);

  private final int value;

  PageType(int value) {
    this.value = value;
  }

  /** The ABI's {@code PAGE_TYPE} byte. */
  public int value() {
    return value;
  }

  /** The type with ABI number {@code value}, or null. */
  public static PageType of(long value) {
    for (PageType t : values()) {
      if (t.value == value) {
        return t;
      }
    }
    return null;
  }
}
