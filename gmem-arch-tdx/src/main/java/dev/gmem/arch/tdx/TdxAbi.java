package dev.gmem.arch.tdx;

import dev.gmem.api.VcpuExit;

/**
 * The numbers of the TDX ABI the plugin speaks: KVM's TDX uAPI, the GHCI's TDG.VP.VMCALL leaves
 * and statuses ({@code arch/x86/include/asm/shared/tdx.h}), the TDX module's TDCALL leaves and
 * completion statuses ({@code arch/x86/kvm/vmx/tdx_errno.h}).
 */
public final class TdxAbi {
  private TdxAbi() {}

  /** {@code KVM_TDX_MEASURE_MEMORY_REGION}: the populate flag that extends MRTD with the pages' contents. */
  public static final long MEASURE_MEMORY_REGION = 1L << 0;

  /** The guest physical address width of the modelled TD (4-level EPT). */
  public static final int GPAW = 48;
  /** {@code TDX_SHARED_BIT_PWL_4}: GPA bit 47 marks a shared access (the top bit of a 48-bit GPA). */
  public static final long SHARED_BIT = 1L << (GPAW - 1);

  /** {@code TDVMCALL_MAP_GPA} (GHCI): r12 = GPA with or without the shared bit, r13 = size. */
  public static final long TDVMCALL_MAP_GPA = 0x10001;

  /** TDCALL leaves are issued through {@code SoftwareVcpu.hypercall} as this bit ORed with the leaf, apart from KVM's and the GHCI's numbers. */
  public static final long TDCALL = 1L << 32;
  /** {@code TDG.MEM.PAGE.ACCEPT} (TDCALL leaf 6): rcx = GPA | level (bits 2:0, 0 = 4 KiB, 1 = 2 MiB). */
  public static final long TDG_MEM_PAGE_ACCEPT = TDCALL | 6;

  /** {@code TDVMCALL_STATUS_SUCCESS}. */
  public static final long TDVMCALL_STATUS_SUCCESS = 0;
  /** {@code TDVMCALL_STATUS_RETRY}: resume the call at r11. */
  public static final long TDVMCALL_STATUS_RETRY = 1;
  /** {@code TDVMCALL_STATUS_INVALID_OPERAND}. */
  public static final long TDVMCALL_STATUS_INVALID_OPERAND = 0x8000_0000_0000_0000L;
  /** {@code TDVMCALL_STATUS_ALIGN_ERROR}. */
  public static final long TDVMCALL_STATUS_ALIGN_ERROR = 0x8000_0000_0000_0002L;
  /** {@code TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED}. */
  public static final long TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED = 0x8000_0000_0000_0003L;

  /** {@code TDX_SUCCESS}. */
  public static final long TDX_SUCCESS = 0;
  /** {@code TDX_OPERAND_BUSY}: another operation holds the resource; KVM retries once with vCPUs kept out. */
  public static final long TDX_OPERAND_BUSY = 0x8000_0200_0000_0000L;
  /** {@code TDX_OPERAND_INVALID}. */
  public static final long TDX_OPERAND_INVALID = 0xC000_0100_0000_0000L;
  /** {@code TDX_EPT_WALK_FAILED}. */
  public static final long TDX_EPT_WALK_FAILED = 0xC000_0B00_0000_0000L;
  /** {@code TDX_EPT_ENTRY_STATE_INCORRECT}. */
  public static final long TDX_EPT_ENTRY_STATE_INCORRECT = 0xC000_0B0D_0000_0000L;
  /** {@code TDX_PAGE_ALREADY_ACCEPTED} (a warning: the guest accepted the page before). */
  public static final long TDX_PAGE_ALREADY_ACCEPTED = 0x0000_0B0A_0000_0000L;
  /** {@code TDX_PAGE_SIZE_MISMATCH}: accepted at another level than the S-EPT entry's. */
  public static final long TDX_PAGE_SIZE_MISMATCH = 0xC000_0B0B_0000_0000L;

  /** {@code EXIT_REASON_EPT_VIOLATION}: the exit reason a #VE's information reports for an unaccepted page. */
  public static final long EXIT_REASON_EPT_VIOLATION = 48;
  /** The #VE vector. */
  public static final int VE = VcpuExit.GuestException.VE;

  /** {@code TDX_MAP_GPA_MAX_LEN}: KVM hands MapGPA to user space in chunks of at most 2 MiB. */
  public static final long MAP_GPA_MAX_LEN = 2L << 20;
}
