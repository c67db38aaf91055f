package dev.gmem.arch.pkvm;

import dev.gmem.api.VcpuExit;

/**
 * The protected guest's memory hypercalls: SMCCC 1.1 fast calls, 64-bit convention, owner
 * vendor-specific hypervisor ({@code ARM_SMCCC_VENDOR_HYP_KVM_*_FUNC_ID}), arguments in x1..x3,
 * result in x0. These are the {@code nr} a guest passes to {@code SoftwareVcpu.hypercall} and the
 * {@code nr} of the {@link VcpuExit.Hypercall} exits the VMM completes ({@code args[0]} = the IPA).
 */
public final class PkvmHypercalls {
  private PkvmHypercalls() {}

  /** {@code ARM_SMCCC_CALL_VAL(FAST_CALL, SMC_64, OWNER_VENDOR_HYP, 0)}. */
  static final long VENDOR_HYP_BASE = 0xC600_0000L;

  /** {@code HYP_MEMINFO} (2): the sharing granule, PAGE_SIZE. No exit. */
  public static final long HYP_MEMINFO = VENDOR_HYP_BASE | 2;
  /** {@code MEM_SHARE} (3): x1 = IPA of a page the guest owns; x2, x3 = 0. */
  public static final long MEM_SHARE = VENDOR_HYP_BASE | 3;
  /** {@code MEM_UNSHARE} (4): x1 = IPA of a page the guest shared; x2, x3 = 0. */
  public static final long MEM_UNSHARE = VENDOR_HYP_BASE | 4;
  /** {@code MEM_RELINQUISH} (9): x1 = IPA of a page the guest gives back to the host (balloon); x2, x3 = 0. */
  public static final long MEM_RELINQUISH = VENDOR_HYP_BASE | 9;

  /** {@code SMCCC_RET_SUCCESS}. */
  public static final long SUCCESS = 0;
  /** {@code SMCCC_RET_NOT_SUPPORTED}. */
  public static final long NOT_SUPPORTED = -1;
  /** {@code SMCCC_RET_INVALID_PARAMETER}: what the guest reads when the hypervisor refused (EPERM inside). */
  public static final long INVALID_PARAMETER = -3;

  /** Whether {@code exit} is one of the memory calls above (from the software vCPU, or a real arm64 vCPU's SMCCC forwarded to user space). */
  public static boolean isMemoryCall(VcpuExit exit) {
    return exit instanceof VcpuExit.Hypercall h && (h.nr() == MEM_SHARE || h.nr() == MEM_UNSHARE || h.nr() == MEM_RELINQUISH);
  }

  /** The IPA a memory call names (x1), page aligned as the hypervisor uses it. */
  public static long ipa(VcpuExit.Hypercall exit) {
    return exit.arg(0) & ~0xfffL;
  }

  static String name(long nr) {
    if (nr == MEM_SHARE) {
      return "MEM_SHARE";
    }
    if (nr == MEM_UNSHARE) {
      return "MEM_UNSHARE";
    }
    if (nr == MEM_RELINQUISH) {
      return "MEM_RELINQUISH";
    }
    return nr == HYP_MEMINFO ? "HYP_MEMINFO" : "0x" + Long.toHexString(nr);
  }
}
