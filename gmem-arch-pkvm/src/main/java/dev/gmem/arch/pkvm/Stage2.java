package dev.gmem.arch.pkvm;

import dev.gmem.api.Errno;
import dev.gmem.api.spi.GmemPage;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The hypervisor's ownership table for one protected VM: the host and guest stage-2 states of
 * every page the guest received, keyed by gmem's page identity (the kernel keys them by host
 * pfn), and the guest's stage 2 (gfn → page). Each transition checks what
 * {@code arch/arm64/kvm/hyp/nvhe/mem_protect.c} checks and returns the errno the hypervisor
 * returns, changing nothing on failure. Transitions are serialized as the hypervisor takes
 * {@code host_lock_component} + {@code guest_lock_component}; lookups are lock-free (the fault
 * paths ask on every host fault).
 */
final class Stage2 {
  private final Map<GmemPage, Ownership> pages = new ConcurrentHashMap<>();
  private final Map<Long, GmemPage> guestStage2 = new ConcurrentHashMap<>();

  Ownership get(GmemPage page) {
    return pages.get(page);
  }

  GmemPage lookup(long gfn) {
    return guestStage2.get(gfn);
  }

  int size() {
    return pages.size();
  }

  /**
   * {@code __pkvm_host_donate_guest}: host OWNED (no entry) and guest NOPAGE at {@code gfn} →
   * host NOPAGE, guest OWNED. A page the guest already holds (prepared again after an unshare) is
   * left as it is.
   */
  synchronized Errno donate(GmemPage page, long gfn) {
    Ownership o = pages.get(page);
    if (o != null) {
      return o.gfn() == gfn ? null : Errno.EPERM;
    }
    GmemPage there = guestStage2.get(gfn);
    if (there != null && !there.equals(page)) {
      return Errno.EPERM; // guest stage 2 not NOPAGE at this IPA
    }
    pages.put(page, Ownership.donated(gfn));
    guestStage2.put(gfn, page);
    return null;
  }

  /**
   * A page the guest never received, mapped at {@code gfn} and shared at once (the host's map
   * request for an untouched IPA followed by the retried MEM_SHARE): SHARED_BORROWED /
   * SHARED_OWNED. Refused where the guest has another page at {@code gfn}.
   */
  synchronized Errno donateShared(GmemPage page, long gfn) {
    Errno e = donate(page, gfn);
    if (e == null) {
      pages.computeIfPresent(page, (p, o) -> o.shared());
    }
    return e;
  }

  /** The checks of {@code __pkvm_guest_share_host}: guest OWNED, host NOPAGE (a parked page may be shared back). */
  Errno checkShare(GmemPage page) {
    return shareable(pages.get(page)) ? null : Errno.EPERM;
  }

  private static boolean shareable(Ownership o) {
    return o != null && (o.guestOwned() || o.unmapping());
  }

  /** The checks of {@code __pkvm_guest_unshare_host}: guest SHARED_OWNED, host SHARED_BORROWED. */
  Errno checkUnshare(GmemPage page) {
    Ownership o = pages.get(page);
    return o != null && o.sharedWithHost() ? null : Errno.EPERM;
  }

  synchronized Errno share(GmemPage page) {
    Ownership o = pages.get(page);
    if (!shareable(o)) {
      return Errno.EPERM;
    }
    pages.put(page, o.shared()); // under this lock: nothing changed the entry since the get
    return null;
  }

  synchronized Errno unshare(GmemPage page) {
    Ownership o = pages.get(page);
    if (o == null || o.guest() != PageState.SHARED_OWNED) {
      return Errno.EPERM;
    }
    pages.put(page, o.unshared());
    return null;
  }

  /**
   * {@link #unshare} of a page the guest holds; false when it holds none (nothing changed). A held
   * page not shared with the host is left as it is.
   */
  synchronized boolean unshareHeld(GmemPage page) {
    Ownership o = pages.get(page);
    if (o == null) {
      return false;
    }
    if (o.guest() == PageState.SHARED_OWNED) {
      pages.put(page, o.unshared());
    }
    return true;
  }

  /** The host could not drop its references yet: the unshare waits for them (NONE). */
  synchronized Errno park(GmemPage page) {
    Errno e = checkUnshare(page);
    if (e == null) {
      pages.computeIfPresent(page, (p, o) -> o.parked());
    }
    return e;
  }

  /**
   * {@code __pkvm_guest_relinquish_to_host}: guest OWNED → the page goes back to the host
   * (guest stage 2 zapped). Anything else is EPERM; nothing mapped at the IPA is a no-op.
   */
  synchronized Errno relinquish(GmemPage page) {
    Ownership o = pages.get(page);
    if (o == null || !o.guestOwned()) {
      return Errno.EPERM;
    }
    pages.remove(page);
    guestStage2.remove(o.gfn(), page);
    return null;
  }

  /** Teardown / free ({@code __pkvm_host_reclaim_page_guest}): whatever the state, the page goes back to the host. */
  synchronized Ownership reclaim(GmemPage page) {
    Ownership o = pages.remove(page);
    if (o != null) {
      guestStage2.remove(o.gfn(), page);
    }
    return o;
  }

  /** Whether the host stage 2 lets the host map the page: it owns it, or borrows it and no unshare waits. */
  boolean hostMayMap(GmemPage page) {
    Ownership o = pages.get(page);
    return o == null || o.sharedWithHost();
  }

  /** Takes over another VM's table (the context move): the pages and the guest's stage 2. */
  synchronized void takeOver(Stage2 source) {
    synchronized (source) {
      pages.putAll(source.pages);
      guestStage2.putAll(source.guestStage2);
      source.pages.clear();
      source.guestStage2.clear();
    }
  }
}
