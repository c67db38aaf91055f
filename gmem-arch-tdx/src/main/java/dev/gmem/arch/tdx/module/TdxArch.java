package dev.gmem.arch.tdx.module;

import static dev.gmem.arch.tdx.TdxAbi.SHARED_BIT;
import static dev.gmem.arch.tdx.TdxAbi.TDX_OPERAND_BUSY;
import static dev.gmem.arch.tdx.TdxAbi.TDX_SUCCESS;

import dev.gmem.api.Errno;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.GuestCall;
import dev.gmem.api.Shareability;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.spi.ArchContext;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.api.spi.GuestFault;
import dev.gmem.arch.tdx.Seamcall;
import dev.gmem.arch.tdx.SeamcallRecord;
import dev.gmem.arch.tdx.SeptEntry;
import dev.gmem.arch.tdx.SeptState;
import dev.gmem.arch.tdx.TdState;
import dev.gmem.arch.tdx.TdxAbi;
import dev.gmem.arch.tdx.TdxModule;
import java.nio.ByteBuffer;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * One TD: KVM's TDX rules around guest_memfd ({@code arch/x86/kvm/vmx/tdx.c}) over a model of the
 * TDX module's state for the TD (S-EPT and PAMT, MRTD, the TD's life cycle). Every hook and
 * inspection call is serialised on the TD, as the TDX module serialises SEAMCALLs on a TD's
 * resources.
 *
 * <ul>
 *   <li><b>Build</b> ({@link TdState#INITIALIZED}): {@code Vm.populate} is
 *       {@code KVM_TDX_INIT_MEM_REGION} — per page {@code TDH.MEM.PAGE.ADD} (4 KiB, the source
 *       copied into the private page, MRTD extended with the GPA) and, with
 *       {@link TdxAbi#MEASURE_MEMORY_REGION}, 16 {@code TDH.MR.EXTEND} over its 256-byte chunks.
 *       OPERAND_BUSY is EBUSY, any other failure {@code KVM_BUG_ON} and EIO. Any guest access or
 *       guest call is EINVAL, also to a page already added, and so is a real vCPU's
 *       {@code KVM_RUN} ({@link #vcpuPreRun}): no vCPU of a TD runs before it is RUNNABLE
 *       ({@code tdx_vcpu_pre_run}). The VMM reads the image it built from its source.
 *   <li><b>Finalize</b>: {@code KVM_TDX_FINALIZE_VM} → {@code TDH.MR.FINALIZE}; a second call, or a
 *       populate afterwards, is EINVAL.
 *   <li><b>Runtime fault</b> ({@link TdState#RUNNABLE}): {@code prepare} is {@code TDH.MEM.PAGE.AUG}:
 *       the page is {@link SeptState#PENDING}; a private access to it is an EPT-violation #VE
 *       ({@link VcpuExit.GuestException}, vector 20, error code = exit reason 48) on the software
 *       vCPU and on a real vCPU alike, until the guest's {@code TDG.MEM.PAGE.ACCEPT} maps it.
 *   <li><b>Removal</b> (punch, eviction, to-shared): BLOCK → TRACK → REMOVE → WBINVD, each of the
 *       first three retried once on OPERAND_BUSY ({@code tdx_sept_zap_private_spte},
 *       {@code tdx_track}, {@code tdx_sept_drop_private_spte}); the page is then cleared — gmem
 *       zeroes converted pages ({@link ContentEffect#ZERO}) and frees punched ones. Any other
 *       failure is {@code KVM_BUG_ON}: the VM dies and the page is leaked, never reused.
 *   <li><b>MapGPA</b>: {@link MapGpaCall}.
 * </ul>
 */
final class TdxArch implements ArchHooks, TdxModule {
  /** How many SEAMCALL records {@link #seamcalls()} keeps (the latest). */
  static final int LOG_SIZE = 4096;
  private static final long PAGE = Folio.PAGE_SIZE;
  private static final int CHUNKS = 4096 / Mrtd.CHUNK;

  private final ArchContext vm;
  private TdState state = TdState.INITIALIZED;
  private Mrtd mrtd = new Mrtd();
  private final SecureEpt sept = new SecureEpt();
  private final Map<Seamcall, ArrayDeque<Long>> injected = new EnumMap<>(Seamcall.class);
  /** Failures queued in {@link #injected}: 0 on the hot path, which then skips the map. */
  private int injectedCount;
  private final SeamcallLog log = new SeamcallLog(LOG_SIZE);
  private final List<GmemPage> leaked = new ArrayList<>();
  /** 2 MiB blocks (GPA >> 21) that hold a page added at build time: mapped at 4 KiB for good. */
  private final Set<Long> builtAt4k = new HashSet<>();
  /** The last block added to {@link #builtAt4k}: an image's pages come in order, one lookup per 2 MiB. */
  private long lastBuiltBlock = -1;
  /** 2 MiB blocks the guest accepted at 4 KiB: its accept level inhibits 2 MiB mappings. */
  private final Set<Long> acceptedAt4k = new HashSet<>();
  /** GPAs the guest accepted before any fault AUGed them (see {@link #accept}). */
  private final Set<Long> acceptedAhead = new HashSet<>();
  private boolean interrupt;
  private boolean hugePages;
  private boolean enhancedDemote;

  TdxArch(ArchContext vm) {
    this.vm = vm;
  }

  // ---- what a TD allows ----------------------------------------------------------------

  @Override
  public boolean hasPrivateMemory() {
    return true;
  }

  /** {@code kvm_arch_supports_gmem_init_shared}: false for TDX, so INIT_SHARED is EINVAL. */
  @Override
  public boolean supportsInitShared() {
    return false;
  }

  /** {@code kvm_arch_gmem_supports_no_direct_map}: false for TDX (KVM clears pages through the direct map). */
  @Override
  public boolean supportsNoDirectMap() {
    return false;
  }

  /** The TD's accesses carry the shared bit. */
  @Override
  public boolean privateBitInAccess() {
    return true;
  }

  @Override
  public long sharedGpaBit() {
    return SHARED_BIT;
  }

  /** Private contents never survive removal: {@code tdx_clear_page} after REMOVE and WBINVD. */
  @Override
  public ContentEffect contentEffect(Shareability from, Shareability to) {
    return from == Shareability.PRIVATE && to != Shareability.PRIVATE ? ContentEffect.ZERO : ContentEffect.PRESERVE;
  }

  // ---- build ---------------------------------------------------------------------------

  @Override
  public synchronized void validatePopulate(long gpa, long npages, long flags, boolean inPlace) {
    if (state == TdState.RUNNABLE) {
      throw GmemException.einval("KVM_TDX_INIT_MEM_REGION on a finalized TD (TD_STATE_RUNNABLE)");
    }
    if ((flags & ~TdxAbi.MEASURE_MEMORY_REGION) != 0) {
      throw GmemException.einval("KVM_TDX_INIT_MEM_REGION flags 0x" + Long.toHexString(flags) + ": only KVM_TDX_MEASURE_MEMORY_REGION is defined");
    }
    long end = gpa + npages * PAGE;
    if (!MapGpaCall.isPrivate(gpa) || !MapGpaCall.isPrivate(end - 1) || end <= gpa) {
      throw GmemException.einval(String.format("KVM_TDX_INIT_MEM_REGION gpa 0x%x + %d pages is not a private GPA range", gpa, npages));
    }
  }

  @Override
  public synchronized boolean postPopulate(GmemPage page, long gfn, ByteBuffer source, ByteBuffer target, long flags) {
    long gpa = gfn << Folio.PAGE_SHIFT;
    long status = execute(Seamcall.TDH_MEM_PAGE_ADD, gpa);
    if (status == TDX_OPERAND_BUSY) {
      throw new GmemException(Errno.EBUSY, String.format("TDH.MEM.PAGE.ADD gpa 0x%x: TDX_OPERAND_BUSY", gpa));
    }
    if (status != TDX_SUCCESS) {
      throw bug(String.format("TDH.MEM.PAGE.ADD gpa 0x%x failed: 0x%016x", gpa, status));
    }
    if (source != null) {
      target.put(0, source, source.position(), (int) PAGE);
    }
    sept.put(new SeptEntry(gpa, page, 0, SeptState.MAPPED, true));
    if (gpa >>> 21 != lastBuiltBlock) {
      lastBuiltBlock = gpa >>> 21;
      builtAt4k.add(lastBuiltBlock);
    }
    mrtd.pageAdd(gpa);
    if ((flags & TdxAbi.MEASURE_MEMORY_REGION) != 0) {
      // The page as the TD sees it: the source's bytes where there is one (a heap copy is the
      // cheaper read), else what is in place.
      ByteBuffer contents = source != null ? source : target;
      int at = source != null ? source.position() : 0;
      if (injectedCount == 0) {
        log.addRun(Seamcall.TDH_MR_EXTEND, gpa, Mrtd.CHUNK, CHUNKS);
        mrtd.extendPage(gpa, contents, at);
      } else {
        extendChunkByChunk(gpa, contents, at);
      }
    }
    return true;
  }

  /** The slow path when an MR.EXTEND failure is injected: the chunks before it are measured. */
  private void extendChunkByChunk(long gpa, ByteBuffer contents, int at) {
    for (int i = 0; i < CHUNKS; i++) {
      long chunkGpa = gpa + (long) i * Mrtd.CHUNK;
      long status = execute(Seamcall.TDH_MR_EXTEND, chunkGpa);
      if (status != TDX_SUCCESS) {
        throw bug(String.format("TDH.MR.EXTEND gpa 0x%x failed: 0x%016x", chunkGpa, status));
      }
      mrtd.extendChunk(chunkGpa, contents, at + i * Mrtd.CHUNK);
    }
  }

  @Override
  public synchronized void finalizeLaunch() {
    if (state == TdState.RUNNABLE) {
      throw GmemException.einval("KVM_TDX_FINALIZE_VM on a TD that is already RUNNABLE");
    }
    long status = execute(Seamcall.TDH_MR_FINALIZE, -1);
    if (status == TDX_OPERAND_BUSY) {
      throw new GmemException(Errno.EBUSY, "TDH.MR.FINALIZE: TDX_OPERAND_BUSY");
    }
    if (status != TDX_SUCCESS) {
      throw bug(String.format("TDH.MR.FINALIZE failed: 0x%016x", status));
    }
    mrtd.finish();
    state = TdState.RUNNABLE;
  }

  /** {@code tdx_vcpu_pre_run}: {@code KVM_RUN} is EINVAL until the TD is RUNNABLE. */
  @Override
  public synchronized void vcpuPreRun() {
    if (state != TdState.RUNNABLE) {
      throw GmemException.einval("KVM_RUN before KVM_TDX_FINALIZE_VM: no vCPU of a TD runs until it is RUNNABLE (tdx_vcpu_pre_run)");
    }
  }

  // ---- runtime faults ------------------------------------------------------------------

  /** {@code tdx_sept_set_private_spte} on a RUNNABLE TD: {@code TDH.MEM.PAGE.AUG}, the page pending. */
  @Override
  public synchronized void prepare(GmemPage first, long gfn, int order) {
    requireRunnable("a private fault");
    long pages = 1L << order;
    if (order >= Folio.PMD_ORDER && (gfn & 511) == 0 && hugeAllowed(gfn << Folio.PAGE_SHIFT)) {
      for (long i = 0; i < pages; i += 512) {
        aug(first.plus(i), (gfn + i) << Folio.PAGE_SHIFT, 1);
      }
      return;
    }
    for (long i = 0; i < pages; i++) {
      aug(first.plus(i), (gfn + i) << Folio.PAGE_SHIFT, 0);
    }
  }

  private void aug(GmemPage page, long gpa, int level) {
    if (sept.lookup(gpa) != null) {
      return; // added at build time, or AUGed by an earlier fault
    }
    long status;
    // KVM returns -EBUSY and the vCPU retries the fault (RET_PF_RETRY) until the AUG goes through.
    while ((status = execute(Seamcall.TDH_MEM_PAGE_AUG, gpa)) == TDX_OPERAND_BUSY) {
      Thread.onSpinWait();
    }
    if (status != TDX_SUCCESS) {
      throw bug(String.format("TDH.MEM.PAGE.AUG gpa 0x%x failed: 0x%016x", gpa, status));
    }
    boolean accepted = level == 0 && acceptedAhead.remove(gpa);
    sept.put(new SeptEntry(gpa, page, level, accepted ? SeptState.MAPPED : SeptState.PENDING, false));
  }

  /** An access to a page the guest has not accepted is an EPT-violation #VE; nothing is accessed. */
  @Override
  public synchronized VcpuExit.GuestException guestAccess(GuestFault access) {
    requireRunnable("a guest access");
    if (!access.isPrivate()) {
      return null;
    }
    long gpa = access.gpa() & ~SHARED_BIT;
    SeptEntry e = sept.lookup(gpa);
    if (e == null) {
      // A page of a huge folio that populate marked prepared as a whole without adding this page:
      // on hardware its first access is an EPT violation that KVM resolves with an AUG.
      aug(access.page(), gpa & -PAGE, 0);
      e = sept.lookup(gpa);
    }
    if (e.state() == SeptState.PENDING || e.state() == SeptState.PENDING_BLOCKED) {
      return new VcpuExit.GuestException(TdxAbi.VE, TdxAbi.EXIT_REASON_EPT_VIOLATION, access.gpa());
    }
    return null;
  }

  /**
   * {@code tdx_gmem_max_mapping_level}: no limit for shared pages, 4 KiB for private ones — or
   * 2 MiB under the huge-page RFC v5's conditions ({@link #enableHugePages}).
   */
  @Override
  public synchronized int maxMappingOrder(GmemPage page, long gfn, boolean isPrivate) {
    if (!isPrivate) {
      return Folio.PUD_ORDER;
    }
    return hugeAllowed(gfn << Folio.PAGE_SHIFT) ? Folio.PMD_ORDER : 0;
  }

  private boolean hugeAllowed(long gpa) {
    long block = gpa >>> 21;
    return hugePages && enhancedDemote && state == TdState.RUNNABLE && !builtAt4k.contains(block) && !acceptedAt4k.contains(block);
  }

  // ---- removal -------------------------------------------------------------------------

  @Override
  public synchronized void invalidate(GmemPage first, long nrPages) {
    for (long i = 0; i < nrPages; i++) {
      GmemPage page = first.plus(i);
      SeptEntry e = sept.owner(page);
      if (e == null) {
        continue;
      }
      if (e.level() == 1) {
        // A 4 KiB removal inside a 2 MiB leaf splits it first (kvm_split_cross_boundary_leafs).
        execute(Seamcall.TDH_MEM_PAGE_DEMOTE, e.gpa());
        sept.demote(e);
        e = sept.owner(page);
      }
      remove(e);
    }
  }

  /** {@code tdx_sept_zap_private_spte}, {@code tdx_track}, {@code tdx_sept_drop_private_spte}. */
  private void remove(SeptEntry e) {
    if (e.state().blocked() || leaked.contains(e.page())) {
      return; // an earlier removal of it failed: the page is leaked
    }
    if (retriedOnce(Seamcall.TDH_MEM_RANGE_BLOCK, e.gpa()) != TDX_SUCCESS) {
      leak(e, "TDH.MEM.RANGE.BLOCK");
      return;
    }
    e = sept.set(e, e.state() == SeptState.PENDING ? SeptState.PENDING_BLOCKED : SeptState.BLOCKED);
    if (retriedOnce(Seamcall.TDH_MEM_TRACK, -1) != TDX_SUCCESS) {
      leak(e, "TDH.MEM.TRACK");
      return;
    }
    if (retriedOnce(Seamcall.TDH_MEM_PAGE_REMOVE, e.gpa()) != TDX_SUCCESS) {
      leak(e, "TDH.MEM.PAGE.REMOVE");
      return;
    }
    sept.unmap(e);
    if (execute(Seamcall.TDH_PHYMEM_PAGE_WBINVD, e.gpa()) != TDX_SUCCESS) {
      leak(e, "TDH.PHYMEM.PAGE.WBINVD");
      return;
    }
    sept.release(e.page());
  }

  /** A SEAMCALL that KVM retries once, with vCPUs kept out of the TD, when it is busy. */
  private long retriedOnce(Seamcall call, long gpa) {
    long status = execute(call, gpa);
    return status == TDX_OPERAND_BUSY ? execute(call, gpa) : status;
  }

  private void leak(SeptEntry e, String step) {
    String reason = String.format("%s gpa 0x%x failed: KVM_BUG_ON, page leaked", step, e.gpa());
    leaked.add(e.page());
    vm.leak(e.page(), 1, reason);
    vm.bug(reason);
  }

  // ---- guest calls ---------------------------------------------------------------------

  @Override
  public GuestCall guestCall(long nr, long[] args) {
    synchronized (this) {
      requireRunnable("a guest call");
    }
    if (nr == TdxAbi.TDVMCALL_MAP_GPA) {
      return MapGpaCall.start(arg(args, 0), arg(args, 1), this::takeInterrupt);
    }
    if (nr == TdxAbi.TDG_MEM_PAGE_ACCEPT) {
      return GuestCall.finished(new GuestCall.Result(accept(arg(args, 0))));
    }
    return ArchHooks.super.guestCall(nr, args); // KVM hypercalls through TDG.VP.VMCALL (tdx_emulate_vmcall)
  }

  private static long arg(long[] args, int i) {
    return i < args.length ? args[i] : 0;
  }

  private synchronized boolean takeInterrupt() {
    boolean pending = interrupt;
    interrupt = false; // delivered when the guest resumes
    return pending;
  }

  /**
   * {@code TDG.MEM.PAGE.ACCEPT}: rcx = GPA | level. A pending leaf becomes mapped; a mapped one
   * answers PAGE_ALREADY_ACCEPTED; a 4 KiB accept inside a 2 MiB pending leaf demotes it and sets
   * the 4 KiB accept-level inhibit ({@code tdx_honor_guest_accept_level}); a 2 MiB accept of a
   * 4 KiB leaf is PAGE_SIZE_MISMATCH. A GPA no fault has AUGed yet would, on hardware, exit to KVM
   * with an EPT violation that AUGs the page before the accept completes; gmem's software vCPU
   * cannot take that exit inside a call, so the accept is recorded and the page is mapped at once
   * when its first fault AUGs it — the same end state.
   */
  private synchronized long accept(long rcx) {
    int level = (int) (rcx & 7);
    long gpa = rcx & ~0xfffL;
    if ((rcx & 0xff8) != 0 || level > 1 || (gpa & SHARED_BIT) != 0 || (gpa >>> TdxAbi.GPAW) != 0
        || (level == 1 && (gpa & ((2L << 20) - 1)) != 0)) {
      return TdxAbi.TDX_OPERAND_INVALID;
    }
    SeptEntry e = sept.lookup(gpa);
    if (e == null) {
      for (long i = 0; i < (level == 1 ? 512 : 1); i++) {
        acceptedAhead.add(gpa + i * PAGE);
      }
      if (level == 0) {
        acceptedAt4k.add(gpa >>> 21);
      }
      return TDX_SUCCESS;
    }
    if (e.level() == 1 && level == 0) {
      execute(Seamcall.TDH_MEM_PAGE_DEMOTE, e.gpa());
      sept.demote(e);
      e = sept.lookup(gpa);
    } else if (e.level() == 0 && level == 1) {
      return TdxAbi.TDX_PAGE_SIZE_MISMATCH;
    }
    if (level == 0) {
      acceptedAt4k.add(gpa >>> 21);
    }
    switch (e.state()) {
      case PENDING:
        sept.set(e, SeptState.MAPPED);
        return TDX_SUCCESS;
      case MAPPED:
        return TdxAbi.TDX_PAGE_ALREADY_ACCEPTED;
      default:
        return TDX_OPERAND_BUSY; // blocked for removal
    }
  }

  // ---- intra-host migration ------------------------------------------------------------

  /**
   * The TD's context moves here: the source must be RUNNABLE and this TD must not have been built
   * (EINVAL otherwise, nothing moved); then S-EPT, PAMT, MRTD and state are this TD's.
   */
  @Override
  public void moveEncryptionContextFrom(ArchHooks source) {
    if (!(source instanceof TdxArch) || source == this) {
      throw GmemException.einval("the source is no other TD of the TDX arch");
    }
    TdxArch s = (TdxArch) source;
    synchronized (this) {
      synchronized (s) {
        if (s.state != TdState.RUNNABLE) {
          throw GmemException.einval("the source TD is not finalized");
        }
        if (state != TdState.INITIALIZED || !sept.isEmpty() || !log.isEmpty()) {
          throw GmemException.einval("the destination TD was already built");
        }
        state = s.state;
        mrtd = s.mrtd.copy();
        sept.takeFrom(s.sept);
        builtAt4k.addAll(s.builtAt4k);
        acceptedAt4k.addAll(s.acceptedAt4k);
        acceptedAhead.addAll(s.acceptedAhead);
        leaked.addAll(s.leaked);
        hugePages = s.hugePages;
        enhancedDemote = s.enhancedDemote;
      }
    }
  }

  // ---- the module's SEAMCALLs ----------------------------------------------------------

  /** One SEAMCALL: an injected status if one is queued, else success; recorded either way. */
  private long execute(Seamcall call, long gpa) {
    long status = TDX_SUCCESS;
    if (injectedCount != 0) {
      ArrayDeque<Long> q = injected.get(call);
      Long s = q == null ? null : q.poll();
      if (s != null) {
        injectedCount--;
        status = s;
      }
    }
    record(call, gpa, status);
    return status;
  }

  private void record(Seamcall call, long gpa, long status) {
    log.add(call, gpa, status);
  }

  private GmemException bug(String reason) {
    vm.bug(reason);
    return new GmemException(Errno.EIO, reason + " (KVM_BUG_ON: the VM is dead)");
  }

  private void requireRunnable(String what) {
    if (state != TdState.RUNNABLE) {
      throw GmemException.einval(what + " before KVM_TDX_FINALIZE_VM: no vCPU of a TD runs until it is RUNNABLE");
    }
  }

  // ---- inspection ----------------------------------------------------------------------

  @Override
  public synchronized TdState state() {
    return state;
  }

  @Override
  public synchronized Optional<SeptEntry> sept(long gpa) {
    return Optional.ofNullable(sept.lookup(gpa));
  }

  @Override
  public synchronized List<SeptEntry> septEntries() {
    return List.copyOf(sept.all());
  }

  @Override
  public synchronized Optional<SeptEntry> pamt(GmemPage page) {
    return Optional.ofNullable(sept.owner(page));
  }

  @Override
  public synchronized byte[] mrtd() {
    if (!mrtd.finished()) {
      throw GmemException.einval("MRTD is final only after KVM_TDX_FINALIZE_VM (TDH.MR.FINALIZE)");
    }
    return mrtd.value();
  }

  @Override
  public synchronized List<SeamcallRecord> seamcalls() {
    return List.copyOf(log.records());
  }

  @Override
  public synchronized void injectFailure(Seamcall call, long status) {
    injected.computeIfAbsent(call, c -> new ArrayDeque<>()).add(status);
    injectedCount++;
  }

  @Override
  public synchronized void raiseInterrupt() {
    interrupt = true;
  }

  @Override
  public synchronized boolean interruptPending() {
    return interrupt;
  }

  @Override
  public synchronized void enableHugePages(boolean enhancedDemoteInterruptibility) {
    hugePages = true;
    enhancedDemote = enhancedDemoteInterruptibility;
  }

  @Override
  public synchronized List<GmemPage> leakedPages() {
    return List.copyOf(leaked);
  }

  @Override
  public synchronized String toString() {
    return "TD[" + state + ", " + sept.all().size() + " S-EPT leaves, " + leaked.size() + " leaked]";
  }
}
