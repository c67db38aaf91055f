package dev.gmem.arch.pkvm;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GuestCall;
import dev.gmem.api.Shareability;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.spi.ArchContext;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.Conversion;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.api.spi.GuestFault;
import dev.gmem.api.spi.Prepared;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The pKVM hypervisor of one protected VM, as gmem's arch hooks: the host and its VMM are
 * untrusted, so the hypervisor's stage-2 ownership ({@link Ownership} per page), not the VMM's
 * shareability bookkeeping, decides what the host may fault, and only the guest converts.
 *
 * <ul>
 *   <li>A private guest fault donates the page ({@link #prepare}: {@code __pkvm_host_donate_guest}).
 *   <li>The guest's {@code MEM_SHARE} / {@code MEM_UNSHARE} ({@link #guestCall}) are checked as the
 *       hypervisor checks them, then exit to the VMM, which converts the page with
 *       {@code setShareability} and completes the exit. A conversion the guest did not ask for is
 *       refused with EPERM ({@link #prepareConversion}): the VMM cannot force-share guest memory,
 *       nor take a shared page back.
 *   <li>An unshare completes only once the host has unmapped the page: gmem zaps its mappings
 *       before the commit; pages with references left (pins) park in {@link Shareability#NONE}
 *       ({@link #busyReferences} = PARK) and the unshare completes on {@link #drained}. If the VMM
 *       completes the exit without converting, the host still maps the page and the hypervisor
 *       refuses the unshare: the guest reads {@link PkvmHypercalls#INVALID_PARAMETER}.
 *   <li>{@link #hostMayFault} answers from the host stage 2: a guest-owned or parked page is
 *       refused whatever the shareability says.
 *   <li>{@code MEM_RELINQUISH} gives a guest-owned page back to the host and exits so that the
 *       VMM frees it; freeing (punch, eviction: {@link #invalidate}) is how donated memory returns
 *       to the host, and freed memory reads zero on its next use.
 * </ul>
 *
 * <p>Reached by the VMM and tests through {@code vm.arch(PkvmHypervisor.class)}.
 */
public final class PkvmHypervisor implements ArchHooks {
  private final ArchContext vm;
  private volatile Stage2 stage2 = new Stage2();
  /** Pages whose MEM_SHARE / MEM_UNSHARE the hypervisor accepted and the VMM has not completed. */
  private final Set<GmemPage> shareRequested = ConcurrentHashMap.newKeySet();
  private final Set<GmemPage> unshareRequested = ConcurrentHashMap.newKeySet();
  /**
   * MEM_SHAREs of IPAs the guest never touched, by gfn, not served yet: pKVM has the host map such
   * a page and retries the call, so it ends up shared without a private use. The hypervisor cannot
   * tell which page the VMM will put there; the VMM's conversion of a page the guest never
   * received (which holds nothing of the guest's) takes the oldest.
   */
  private final java.util.Deque<Long> unmappedShares = new java.util.concurrent.ConcurrentLinkedDeque<>();
  /** Pages of a conversion to shared between its veto and its commit: their invalidate is not a reclaim. */
  private final Set<GmemPage> sharing = ConcurrentHashMap.newKeySet();
  private final AtomicLong reclaimedGuestPages = new AtomicLong();
  private final AtomicLong refusedHostFaults = new AtomicLong();

  PkvmHypervisor(ArchContext vm) {
    this.vm = vm;
  }

  // ---- inspection ------------------------------------------------------------------------

  /** The hypervisor's view of {@code page}; empty when the host owns it (never donated, or given back). */
  public Optional<Ownership> ownership(GmemPage page) {
    return Optional.ofNullable(stage2.get(page));
  }

  /** The host stage-2 state of {@code page}. */
  public PageState hostState(GmemPage page) {
    Ownership o = stage2.get(page);
    return o == null ? PageState.OWNED : o.host();
  }

  /** The guest stage-2 state of {@code page}. */
  public PageState guestState(GmemPage page) {
    Ownership o = stage2.get(page);
    return o == null ? PageState.NOPAGE : o.guest();
  }

  /** Pages the guest holds (owned or shared). */
  public long guestPages() {
    return stage2.size();
  }

  /** Guest-owned pages that went back to the host by being freed (reclaim at punch or eviction). */
  public long reclaimedGuestPages() {
    return reclaimedGuestPages.get();
  }

  /** Host faults the hypervisor refused although gmem's shareability said SHARED. */
  public long refusedHostFaults() {
    return refusedHostFaults.get();
  }

  // ---- rules -----------------------------------------------------------------------------

  @Override
  public boolean hasPrivateMemory() {
    return true;
  }

  /** A protected VM's memory starts as the guest's: the host never sees it before the guest shares. */
  @Override
  public boolean supportsInitShared() {
    return false;
  }

  @Override
  public void prepare(GmemPage first, long gfn, int order) {
    for (long i = 0; i < 1L << order; i++) {
      Errno e = stage2.donate(first.plus(i), gfn + i);
      if (e != null) {
        throw new GmemException(e, "pKVM: cannot donate " + first.plus(i) + " to the guest at gfn 0x" + Long.toHexString(gfn + i)
            + " (" + stage2.get(first.plus(i)) + ")");
      }
    }
  }

  /** A private access to a page the guest relinquished: the host maps it again (donates it back), as the hypervisor's map request would. */
  @Override
  public VcpuExit.GuestException guestAccess(GuestFault access) {
    if (access.isPrivate() && stage2.get(access.page()) == null) {
      stage2.donate(access.page(), access.gpa() >>> 12);
    }
    return null;
  }

  @Override
  public boolean hostMayFault(GmemPage page, Shareability shareability) {
    if (shareability != Shareability.SHARED) {
      return false;
    }
    // Asked with SHARED while gmem still says otherwise: a conversion to shared plans the host's
    // mappings before the hypervisor commits; a page the guest asked to share will be the host's.
    if (shareRequested.contains(page)) {
      return true;
    }
    if (!stage2.hostMayMap(page)) {
      refusedHostFaults.incrementAndGet();
      return false;
    }
    return true;
  }

  @Override
  public BusyPolicy busyReferences(Conversion run) {
    return BusyPolicy.PARK;
  }

  @Override
  public Prepared prepareConversion(Conversion run) {
    // One pass, each page's entry and request looked up once: a guest's share or unshare is one
    // page, and these lookups are most of what the hypervisor adds to its conversion.
    boolean toSharedFromPrivate = run.to() == Shareability.SHARED && run.from() == Shareability.PRIVATE;
    long untouched = 0;
    GmemPage refused = null;
    String refusal = null;
    for (long i = 0; i < run.nrPages(); i++) {
      GmemPage p = page(run, i);
      Ownership o = stage2.get(p);
      boolean requested = run.to() == Shareability.SHARED ? shareRequested.contains(p) : unshareRequested.contains(p);
      untouched += toSharedFromPrivate && !requested && o == null ? 1 : 0;
      if (refusal == null) {
        refusal = refusal(o, requested, run.from(), run.to());
        refused = p;
      }
    }
    if (untouched > unmappedShares.size()) {
      throw new GmemException(Errno.EPERM, "pKVM refuses PRIVATE -> SHARED of " + run + ": " + untouched
          + " page(s) the guest never received, " + unmappedShares.size() + " share(s) of untouched IPAs pending");
    }
    if (refusal != null) {
      throw new GmemException(Errno.EPERM, "pKVM refuses " + run.from() + " -> " + run.to() + " of " + refused + ": " + refusal);
    }
    if (run.to() == Shareability.SHARED) {
      forEach(run, sharing::add);
    }
    return new Prepared() {
      @Override
      public void commit() {
        forEach(run, p -> commitPage(p, run.from(), run.to()));
      }

      @Override
      public void abort() {
        forEach(run, sharing::remove);
      }
    };
  }

  /**
   * Why the hypervisor refuses one page's move, or null: {@code o} is the page's entry,
   * {@code requested} whether the guest asked for this move (MEM_SHARE to SHARED, MEM_UNSHARE else).
   */
  private String refusal(Ownership o, boolean requested, Shareability from, Shareability to) {
    if (to == Shareability.SHARED) {
      if (requested || (from == Shareability.PRIVATE && o != null && o.sharedWithHost())) {
        return null;
      }
      if (from == Shareability.PRIVATE && o == null && !unmappedShares.isEmpty()) {
        return null; // the guest asked to share an IPA it never touched: the host maps a page there
      }
      return "the guest has not shared it (MEM_SHARE); the host cannot make protected memory shared";
    }
    if (from == Shareability.NONE) {
      return null; // to PRIVATE: the parked unshare completes early, its references are gone
    }
    if (from == Shareability.SHARED) {
      if (o == null) {
        return null; // a host-owned page (refaulted after a punch): the guest gets it by donation
      }
      if (!requested || !o.sharedWithHost()) {
        return "the guest has not unshared it (MEM_UNSHARE); the host cannot take a shared page back from a protected guest";
      }
    }
    return null;
  }

  private void commitPage(GmemPage p, Shareability from, Shareability to) {
    if (to == Shareability.SHARED) {
      if (!unmappedShares.isEmpty() && stage2.get(p) == null) {
        Long gfn = unmappedShares.pollFirst();
        if (gfn != null) {
          stage2.donateShared(p, gfn); // the host's page, mapped at the guest's IPA and shared in one go
        }
      }
      stage2.share(p); // NONE -> SHARED cancels the parked unshare: the page is shared again
      shareRequested.remove(p);
      sharing.remove(p);
    } else if (to == Shareability.NONE) {
      stage2.park(p);
      unshareRequested.remove(p);
    } else if (stage2.unshareHeld(p) || from == Shareability.NONE) {
      unshareRequested.remove(p);
    }
  }

  @Override
  public void drained(GmemPage first, long nrPages) {
    for (long i = 0; i < nrPages; i++) {
      stage2.unshare(first.plus(i)); // the host's last reference went: the unshare completes
    }
  }

  /**
   * Pages leave private use. During a conversion to shared that the guest asked for this is its
   * share, nothing to reclaim; otherwise the page is freed (punch, eviction, VM teardown) and
   * goes back to the host ({@code __pkvm_host_reclaim_page_guest}); its memory is freed with it,
   * which is what keeps the guest's bytes from the host (the hypervisor poisons it).
   */
  @Override
  public void invalidate(GmemPage first, long nrPages) {
    for (long i = 0; i < nrPages; i++) {
      GmemPage p = first.plus(i);
      if (sharing.contains(p)) {
        continue;
      }
      Ownership o = stage2.reclaim(p);
      shareRequested.remove(p);
      unshareRequested.remove(p);
      if (o != null && o.guest() == PageState.OWNED) {
        reclaimedGuestPages.incrementAndGet();
      }
    }
  }

  // ---- the guest's hypercalls ------------------------------------------------------------

  @Override
  public GuestCall guestCall(long nr, long[] args) {
    long x1 = arg(args, 0);
    boolean reservedZero = arg(args, 1) == 0 && arg(args, 2) == 0;
    if (nr == PkvmHypercalls.HYP_MEMINFO) {
      return finished(x1 == 0 && reservedZero ? 4096 : PkvmHypercalls.INVALID_PARAMETER);
    }
    if (nr != PkvmHypercalls.MEM_SHARE && nr != PkvmHypercalls.MEM_UNSHARE && nr != PkvmHypercalls.MEM_RELINQUISH) {
      return finished(PkvmHypercalls.NOT_SUPPORTED);
    }
    if (!reservedZero) {
      return finished(PkvmHypercalls.INVALID_PARAMETER);
    }
    long ipa = x1 & ~0xfffL;
    GmemPage page = stage2.lookup(ipa >>> 12);
    if (nr == PkvmHypercalls.MEM_RELINQUISH) {
      if (page == null) {
        return finished(PkvmHypercalls.SUCCESS); // nothing mapped there: nothing to give back
      }
      if (stage2.relinquish(page) != null) {
        return finished(PkvmHypercalls.INVALID_PARAMETER);
      }
      return new MemCall(this, nr, ipa, page);
    }
    if (page == null) {
      if (nr == PkvmHypercalls.MEM_UNSHARE) {
        return finished(PkvmHypercalls.INVALID_PARAMETER); // nothing shared there
      }
      // Not in the guest's stage 2: pKVM asks the host to map a page there and retries the call.
      unmappedShares.addLast(ipa >>> 12);
      return new MemCall(this, nr, ipa, null);
    }
    Errno e = nr == PkvmHypercalls.MEM_SHARE ? stage2.checkShare(page) : stage2.checkUnshare(page);
    if (e != null) {
      return finished(PkvmHypercalls.INVALID_PARAMETER);
    }
    (nr == PkvmHypercalls.MEM_SHARE ? shareRequested : unshareRequested).add(page);
    return new MemCall(this, nr, ipa, page);
  }

  /** The VMM completed the exit of a call on {@code page} with {@code ret}: what the guest reads. */
  long complete(long nr, long ipa, GmemPage page, long ret) {
    if (nr == PkvmHypercalls.MEM_RELINQUISH) {
      return PkvmHypercalls.SUCCESS; // the hypervisor gave the page back already; freeing it is the host's business
    }
    if (nr == PkvmHypercalls.MEM_SHARE && page == null) {
      return completeUnmappedShare(ipa, ret);
    }
    if (nr == PkvmHypercalls.MEM_SHARE) {
      boolean asked = shareRequested.remove(page);
      if (ret != 0) {
        return PkvmHypercalls.INVALID_PARAMETER;
      }
      Ownership o = stage2.get(page);
      if (o != null && o.sharedWithHost()) {
        return PkvmHypercalls.SUCCESS;
      }
      // The VMM did not convert: the hypervisor shares anyway (the host may fault it once gmem
      // says SHARED, which the VMM may now do), unless the page went away meanwhile.
      return asked && stage2.share(page) == null ? PkvmHypercalls.SUCCESS : PkvmHypercalls.INVALID_PARAMETER;
    }
    unshareRequested.remove(page);
    Ownership o = stage2.get(page);
    if (ret != 0 || o == null) {
      return PkvmHypercalls.INVALID_PARAMETER;
    }
    // Done (guest OWNED) or waiting for the host's references (parked): the guest's unshare
    // stands. Still shared: the host did not unmap, so the hypervisor refuses.
    return o.guestOwned() || o.unmapping() ? PkvmHypercalls.SUCCESS : PkvmHypercalls.INVALID_PARAMETER;
  }

  /** A share of an IPA that had no page: done if the VMM's conversion mapped one there. */
  private long completeUnmappedShare(long ipa, long ret) {
    long gfn = ipa >>> 12;
    boolean pending = unmappedShares.removeFirstOccurrence(gfn); // false: a conversion took it
    if (ret != 0 || pending) {
      return PkvmHypercalls.INVALID_PARAMETER; // refused, or the VMM put no page there
    }
    GmemPage page = stage2.lookup(gfn);
    Ownership o = page == null ? null : stage2.get(page);
    return o != null && o.sharedWithHost() ? PkvmHypercalls.SUCCESS : PkvmHypercalls.INVALID_PARAMETER;
  }

  /** The context move: this VM's hypervisor state takes over the source's. */
  @Override
  public void moveEncryptionContextFrom(ArchHooks source) {
    if (source instanceof PkvmHypervisor src) {
      stage2.takeOver(src.stage2);
    }
  }

  private static GuestCall finished(long value) {
    return GuestCall.finished(new GuestCall.Result(value));
  }

  private static long arg(long[] args, int i) {
    return args != null && i < args.length ? args[i] : 0;
  }

  private static void forEach(Conversion run, java.util.function.Consumer<GmemPage> action) {
    for (long i = 0; i < run.nrPages(); i++) {
      action.accept(page(run, i));
    }
  }

  /** Page {@code i} of {@code run}; its first without a copy (a guest's call converts one page). */
  private static GmemPage page(Conversion run, long i) {
    return i == 0 ? run.first() : run.first().plus(i);
  }

  @Override
  public String toString() {
    return "pKVM hypervisor (" + vm.vmType() + ", " + stage2.size() + " guest pages)";
  }
}
