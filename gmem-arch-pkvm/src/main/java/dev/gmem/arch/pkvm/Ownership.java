package dev.gmem.arch.pkvm;

/**
 * One host page as the hypervisor sees it: its state in the host's stage 2 and in the protected
 * guest's, and the guest frame it is mapped at. Pages the guest never received (or that went back
 * to the host) have no entry: the host owns them ({@code OWNED}/{@code NOPAGE}).
 *
 * @param host      the page's state in the host stage 2
 * @param guest     the page's state in the guest stage 2
 * @param gfn       where the guest maps it
 * @param unmapping an unshare the host has not finished: the host still holds references, so the
 *                  page waits in gmem's NONE and nobody may fault it (pKVM's NONE_SHARED)
 */
public record Ownership(PageState host, PageState guest, long gfn, boolean unmapping) {
  /** {@code __pkvm_host_donate_guest}: host NOPAGE (owner = guest), guest OWNED. */
  static Ownership donated(long gfn) {
    return new Ownership(PageState.NOPAGE, PageState.OWNED, gfn, false);
  }

  /** {@code __pkvm_guest_share_host}: guest SHARED_OWNED, host SHARED_BORROWED. */
  Ownership shared() {
    return new Ownership(PageState.SHARED_BORROWED, PageState.SHARED_OWNED, gfn, false);
  }

  /** {@code __pkvm_guest_unshare_host} completed: back to donated. */
  Ownership unshared() {
    return donated(gfn);
  }

  Ownership parked() {
    return new Ownership(host, guest, gfn, true);
  }

  /** The guest owns it alone. */
  public boolean guestOwned() {
    return guest == PageState.OWNED && host == PageState.NOPAGE;
  }

  /** Shared by the guest with the host, and no unshare waiting. */
  public boolean sharedWithHost() {
    return guest == PageState.SHARED_OWNED && host == PageState.SHARED_BORROWED && !unmapping;
  }
}
