package dev.gmem.arch.tdx;

/** A TD's life cycle as KVM tracks it ({@code enum kvm_tdx_state} in {@code arch/x86/kvm/vmx/tdx.h}). */
public enum TdState {
  /**
   * {@code TD_STATE_INITIALIZED}: {@code KVM_TDX_INIT_VM} done, the TD is being built. Pages are
   * added with {@code TDH.MEM.PAGE.ADD} ({@code KVM_TDX_INIT_MEM_REGION}); no vCPU may run.
   */
  INITIALIZED,
  /**
   * {@code TD_STATE_RUNNABLE}: {@code KVM_TDX_FINALIZE_VM} ({@code TDH.MR.FINALIZE}) done. MRTD is
   * final; private faults add pending pages with {@code TDH.MEM.PAGE.AUG}; populate is EINVAL.
   */
  RUNNABLE
}
