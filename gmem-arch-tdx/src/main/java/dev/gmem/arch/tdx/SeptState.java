package dev.gmem.arch.tdx;

/**
 * The state of a Secure-EPT leaf entry as the TDX module keeps it (the TDX module's
 * {@code SEPT_STATE_*}; an absent entry is {@code SEPT_FREE}).
 */
public enum SeptState {
  /** Present and usable by the guest: added by {@code TDH.MEM.PAGE.ADD}, or AUGed and accepted. */
  MAPPED,
  /** Added by {@code TDH.MEM.PAGE.AUG} and not yet accepted: a guest access is an EPT-violation #VE. */
  PENDING,
  /** {@code TDH.MEM.RANGE.BLOCK} done on a mapped entry: the guest cannot create new TLB entries for it. */
  BLOCKED,
  /** {@code TDH.MEM.RANGE.BLOCK} done on a pending entry. */
  PENDING_BLOCKED;

  /** Whether the entry is blocked. */
  public boolean blocked() {
    return this == BLOCKED || this == PENDING_BLOCKED;
  }
}
