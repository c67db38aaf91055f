package dev.gmem.arch.snp;

import dev.gmem.api.Api;
import dev.gmem.api.Errno;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.GuestCall;
import dev.gmem.api.MemoryExitException;
import dev.gmem.api.Shareability;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.spi.ArchContext;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.Conversion;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.api.spi.GuestFault;
import dev.gmem.api.spi.Prepared;
import java.nio.ByteBuffer;
import java.security.SecureRandom;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * AMD SEV-SNP for one {@code VmType.SNP} VM, after KVM's {@code arch/x86/kvm/svm/sev.c} and the
 * SEV-SNP firmware ABI. Reached by a VMM or a test through {@code vm.arch(SnpArch.class)}.
 *
 * <p><b>What is real and what is modelled.</b> There is no SNP hardware or firmware here. Real: the
 * memory (gmem's guest_memfd or memfd pages), the conversions and their content effects, the
 * launch digest (SHA-384 over the ABI's PAGE_INFO chain, bit-exact), the KVM exit protocol of page
 * state changes ({@code KVM_HC_MAP_GPA_RANGE} exits with KVM's coalescing and error codes), and on
 * the kvm backend a real DEFAULT KVM VM whose real vCPUs make shared accesses only. <b>#VC is a
 * software-vCPU event here</b>: it needs a private (C-bit) access, and a real vCPU's access carries
 * none on this host — the vCPU belongs to a DEFAULT KVM VM (6.18 has no SNP VM type to give it a
 * C-bit, and the host CPU is Intel, with no SEV), the C-bit position of a guest page-table entry is
 * an ordinary physical-address bit to its MMU, and in real mode there is no page table at all. The
 * GPA the kernel hands back to gmem (an MMIO exit in the slot) therefore says nothing about
 * privacy, so gmem treats it as shared: a real vCPU's access to a private page, validated or not,
 * is the memory-fault exit (no private flag), never a #VC, and PVALIDATE (an SVM instruction)
 * cannot be executed by it. On SNP hardware a guest with paging off makes private accesses; this
 * real-vCPU path does not model that. Modelled: the RMP
 * (a table in this object, changed where KVM issues RMPUPDATE and PSMASH), PVALIDATE and the #VC
 * it and guest accesses raise on the software vCPU, SNP_LAUNCH_UPDATE's page handling (copy,
 * zero, CPUID check against a {@link CpuidPolicy}, immutable pre-guest pages) and encryption
 * itself: private bytes are stored in plain text, and what the host sees of a page leaving
 * private use is a fixed scramble pattern ({@link ContentEffect#SCRAMBLE}), never the plaintext.
 *
 * <p><b>Rules.</b> {@link #prepare}: RMPUPDATE to guest-owned at 2 MiB when the folio is at least
 * 2 MiB, page and GPA are 2 MiB aligned and all 512 pages are hypervisor-owned, else at 4 KiB;
 * an assigned page is left alone ({@code sev_gmem_prepare}). {@link #invalidate}: back to
 * hypervisor-owned, PSMASHing a 2 MiB entry first when only part of it goes; a page the
 * "firmware" refuses ({@link #failReclaim}) is leaked ({@code snp_leak_pages}), never reused.
 * Conversions PSMASH partly converted 2 MiB entries before their point of no return.
 * {@link #maxMappingOrder}: the RMP entry's size for private pages. {@link #hostMayFault}: never
 * for an assigned page (an RMP violation, counted) unless it is leaving private use. Guest accesses: a private access to an
 * unvalidated page is a #VC ({@link #VC_PAGE_NOT_VALIDATED}); the guest validates with
 * {@link #PVALIDATE} (see {@link SnpGuest}). Populate ({@code Vm.populate} with a {@link PageType}
 * value as flags) is {@code SNP_LAUNCH_UPDATE} until {@link #finalizeLaunch}
 * ({@code SNP_LAUNCH_FINISH}), after which it is EINVAL.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public final class SnpArch implements ArchHooks {
  /** Guest call: PVALIDATE, args = gpa, page size (0: 4 KiB, 1: 2 MiB), validate (1) or rescind (0). The number is the instruction's encoding, F2 0F 01 FF. */
  public static final long PVALIDATE = 0xF20F01FFL;
  /** Guest call: VMGEXIT with the GHCB MSR protocol, args = the GHCB MSR value ({@code SVM_EXIT_VMGEXIT}). */
  public static final long VMGEXIT_MSR = 0x403;
  /** PVALIDATE succeeded. */
  public static final long PVALIDATE_SUCCESS = 0;
  /** PVALIDATE: bad input (unaligned GPA, bad size). */
  public static final long PVALIDATE_FAIL_INPUT = 1;
  /** PVALIDATE: the RMP entry's page size differs from the requested one. */
  public static final long PVALIDATE_FAIL_SIZEMISMATCH = 6;
  /**
   * PVALIDATE changed nothing (hardware: rFLAGS.CF = 1): a rescind of an unvalidated page. (A
   * validation of a validated page is a #VC here, see {@link #VC_DOUBLE_VALIDATION}.)
   */
  public static final long PVALIDATE_FAIL_NOUPDATE = 255;
  /**
   * Result of a PVALIDATE whose page has no RMP entry yet: on hardware the instruction takes a
   * nested page fault, KVM faults the guest_memfd page in (prepare) and the instruction is
   * retried. {@link SnpGuest#pvalidate} does exactly that through the software vCPU.
   */
  public static final long PVALIDATE_NESTED_FAULT = -1;
  /** #VC error code {@code PAGE_NOT_VALIDATED} (APM vol. 2, §15.36.10). */
  public static final long VC_PAGE_NOT_VALIDATED = 0x404;
  /**
   * #VC error code gmem gives a validation of an already validated page. Hardware reports it as
   * PVALIDATE's "no update" (rFLAGS.CF = 1), which guests treat as fatal; gmem raises it as a #VC
   * event carrying {@link #PVALIDATE_FAIL_NOUPDATE} so that the VMM sees the guest's fault.
   */
  public static final long VC_DOUBLE_VALIDATION = PVALIDATE_FAIL_NOUPDATE;

  private static final int ORDER_2M = RmpEntry.ORDER_2M;

  private final ArchContext vm;
  private volatile int asid;
  private final Rmp rmp = new Rmp();
  private final LaunchDigest digest = new LaunchDigest();
  private final SecureRandom random = new SecureRandom();
  private final Set<GmemPage> unreclaimable = ConcurrentHashMap.newKeySet();
  private final Set<Long> nestedFaults = ConcurrentHashMap.newKeySet();
  /** Guest frames the guest validates right before its first private access ({@link #validateBeforeFirstUse}). */
  private final Set<Long> validateOnUse = ConcurrentHashMap.newKeySet();
  private final AtomicLong rmpViolations = new AtomicLong();
  private final AtomicLong vcEvents = new AtomicLong();
  private volatile boolean killOnReclaimFailure;
  private volatile CpuidPolicy cpuidPolicy = CpuidPolicy.ACCEPT_ALL;
  private volatile long launchUpdateLimit = Long.MAX_VALUE;
  private long launchedThisCall;
  private volatile boolean launched;
  private byte[] measurement;

  SnpArch(ArchContext vm, int asid) {
    this.vm = vm;
    this.asid = asid;
  }

  // ---- inspection and fault injection ---------------------------------------------------------

  /** This guest's ASID. */
  public int asid() {
    return asid;
  }

  /** The RMP entry of {@code page} ({@link RmpEntry#HYPERVISOR} when unassigned). */
  public RmpEntry rmpEntry(GmemPage page) {
    return rmp.get(page);
  }

  /** The page assigned at guest frame {@code gfn}, or null. */
  public GmemPage pageAt(long gfn) {
    return rmp.pageAt(gfn);
  }

  /** Guest-owned pages. */
  public int assignedPages() {
    return rmp.assignedPages();
  }

  /** PSMASH instructions issued so far. */
  public long psmashCount() {
    return rmp.psmashes();
  }

  /** RMPUPDATE instructions issued so far (one per 4 KiB or 2 MiB entry). */
  public long rmpUpdateCount() {
    return rmp.rmpUpdates();
  }

  /**
   * How often the RMP check refused the host an assigned page: gmem asks on every host fault path
   * (mappings' accessors, pins, the GPA view) and when it lays out a host mapping's covers.
   */
  public long rmpViolations() {
    return rmpViolations.get();
  }

  /** #VC events raised so far. */
  public long vcEvents() {
    return vcEvents.get();
  }

  /** The launch digest so far ({@code DIGEST_CUR}). */
  public synchronized byte[] launchDigest() {
    return digest.value();
  }

  /** The launch digest as hex. */
  public synchronized String launchDigestHex() {
    return digest.hex();
  }

  /** The measurement {@code SNP_LAUNCH_FINISH} fixed, or null before it. */
  public synchronized byte[] measurement() {
    return measurement == null ? null : measurement.clone();
  }

  public boolean launched() {
    return launched;
  }

  /** Fault injection: the firmware will refuse to give {@code page} back; it leaks, and with {@code killVm} the VM dies (KVM_BUG_ON). */
  public void failReclaim(GmemPage page, boolean killVm) {
    unreclaimable.add(page);
    killOnReclaimFailure = killVm;
  }

  /** What the modelled firmware accepts in CPUID pages. */
  public void cpuidPolicy(CpuidPolicy policy) {
    cpuidPolicy = java.util.Objects.requireNonNull(policy, "policy");
  }

  /** Partial progress: the firmware handles at most {@code pages} per LAUNCH_UPDATE call; the caller resumes. */
  public void launchUpdateLimit(long pages) {
    if (pages <= 0) {
      throw GmemException.einval("a launch update handles at least one page");
    }
    launchUpdateLimit = pages;
  }

  /**
   * The guest's {@code SVM_VMGEXIT_PSC} NAE event over its PSC buffer ({@link PageStateChange}),
   * which is advanced in place; EIO on a dead VM.
   */
  public GuestCall pageStateChange(ByteBuffer pscBuffer) {
    checkAlive();
    return PageStateChange.buffer(pscBuffer);
  }

  /**
   * Guest policy: the guest PVALIDATEs each page of {@code [gpa, gpa + length)} right before its
   * first private access to it (just-in-time validation, as a guest that accepts memory lazily on
   * allocation does), instead of all of them now. That access validates the page's RMP entry (a
   * 2 MiB entry as a whole) instead of raising #VC; nothing is faulted in before it, so pages the
   * guest never uses are never prepared — the RMP and prepare calls such a guest produces on
   * hardware. Counted as validations, not as #VC events.
   */
  public void validateBeforeFirstUse(long gpa, long length) {
    if ((gpa & (Folio.PAGE_SIZE - 1)) != 0 || length <= 0 || (length & (Folio.PAGE_SIZE - 1)) != 0) {
      throw GmemException.einval("validateBeforeFirstUse: gpa 0x" + Long.toHexString(gpa) + " and length " + length + " must be page aligned");
    }
    for (long g = gpa >>> 12; g < (gpa + length) >>> 12; g++) {
      validateOnUse.add(g);
    }
  }

  private void checkAlive() {
    if (vm.isDead()) {
      throw new GmemException(Errno.EIO, "the SNP VM is dead");
    }
  }

  // ---- hooks ----------------------------------------------------------------------------------

  @Override
  public boolean hasPrivateMemory() {
    return true;
  }

  @Override
  public boolean supportsInitShared() {
    return false;
  }

  /** v12 of the direct-map series refuses SEV-SNP (upstream-proposals §3.4). */
  @Override
  public boolean supportsNoDirectMap() {
    return false;
  }

  /** The C-bit: a guest access says itself whether it is private. */
  @Override
  public boolean privateBitInAccess() {
    return true;
  }

  /** {@code sev_gmem_prepare}, per 2 MiB block of the folio. */
  @Override
  public void prepare(GmemPage first, long gfn, int order) {
    long n = 1L << order;
    for (long i = 0; i < n; ) {
      GmemPage p = first.plus(i);
      long g = gfn + i;
      if (order >= ORDER_2M && (p.index() & 511) == 0 && (g & 511) == 0 && i + 512 <= n && rmp.allShared2M(p)) {
        rmp.assign(p, g, ORDER_2M, asid, false, false);
        i += 512;
        continue;
      }
      if (!rmp.get(p).assigned()) {
        rmp.assign(p, g, 0, asid, false, false);
      }
      i++;
    }
  }

  /** {@code sev_gmem_invalidate}: PSMASH where only part of a 2 MiB entry goes, RMPUPDATE shared, leak on failure. */
  @Override
  public void invalidate(GmemPage first, long nrPages) {
    long end = first.index() + nrPages;
    for (long i = 0; i < nrPages; ) {
      GmemPage p = first.plus(i);
      RmpEntry e = rmp.get(p);
      if (!e.assigned()) {
        i++;
        continue;
      }
      if (e.is2M()) {
        GmemPage base = Rmp.base2M(p);
        boolean whole = base.index() == p.index() && base.index() + 512 <= end && !anyUnreclaimable(base, 512);
        if (whole) {
          rmp.reclaim(base);
          i += 512;
          continue;
        }
        rmp.psmash(p);
      }
      if (unreclaimable.contains(p)) {
        vm.leak(p, 1, "SNP: RMPUPDATE to hypervisor-owned failed for " + p);
        if (killOnReclaimFailure) {
          vm.bug("SNP: reclaim of " + p + " failed");
        }
      } else {
        rmp.reclaim(p);
      }
      i++;
    }
  }

  private boolean anyUnreclaimable(GmemPage base, int n) {
    if (unreclaimable.isEmpty()) {
      return false;
    }
    for (int i = 0; i < n; i++) {
      if (unreclaimable.contains(base.plus(i))) {
        return true;
      }
    }
    return false;
  }

  /**
   * Ciphertext: what the host sees of a page that leaves private use is never the plaintext. A
   * page entering private use keeps its bytes, which is what populating in place needs (the
   * firmware encrypts the page where it is); a running guest validates and writes such pages
   * before it trusts them.
   */
  @Override
  public ContentEffect contentEffect(Shareability from, Shareability to) {
    return from == Shareability.PRIVATE ? ContentEffect.SCRAMBLE : ContentEffect.PRESERVE;
  }

  /** A run leaving private use that covers only part of a 2 MiB RMP entry PSMASHes it first, before the point of no return. */
  @Override
  public Prepared prepareConversion(Conversion run) {
    if (!run.leavesPrivate()) {
      return Prepared.NOTHING;
    }
    long start = run.first().index();
    long end = start + run.nrPages();
    smashIfPartial(run.first(), start, end);
    smashIfPartial(run.first().plus(run.nrPages() - 1), start, end);
    return Prepared.NOTHING;
  }

  private void smashIfPartial(GmemPage p, long start, long end) {
    RmpEntry e = rmp.get(p);
    if (e.assigned() && e.is2M()) {
      long base = p.index() & ~511L;
      if (base < start || base + 512 > end) {
        rmp.psmash(p);
      }
    }
  }

  /** {@code sev_gmem_max_mapping_level}: the RMP entry's size for private pages; shared pages are the host's. */
  @Override
  public int maxMappingOrder(GmemPage page, long gfn, boolean isPrivate) {
    if (!isPrivate) {
      return Folio.PUD_ORDER;
    }
    RmpEntry e = rmp.get(page);
    return e.assigned() ? e.order() : 0;
  }

  /**
   * The RMP check on host accesses: an assigned (guest-owned) page is never the host's. gmem asks
   * with the shareability the page has, or will have once a conversion commits: a page converting
   * to shared is still assigned until {@link #invalidate} reclaims it after the point of no return,
   * and one whose reclaim fails is leaked (gmem refuses it then), so SHARED is the host's.
   */
  @Override
  public boolean hostMayFault(GmemPage page, Shareability shareability) {
    if (shareability == Shareability.SHARED) {
      return true;
    }
    if (rmp.get(page).assigned()) {
      rmpViolations.incrementAndGet();
    }
    return false;
  }

  /** The page-validation check of private accesses: unvalidated → #VC PAGE_NOT_VALIDATED. */
  @Override
  public VcpuExit.GuestException guestAccess(GuestFault access) {
    if (!access.isPrivate()) {
      return null;
    }
    if (nestedFaults.remove(access.gpa() >>> 12)) {
      return null; // PVALIDATE's own nested page fault: it only needed the page in place
    }
    RmpEntry e = rmp.get(access.page());
    if (e.assigned() && !e.validated() && validateOnUse.remove(access.gpa() >>> 12)) {
      GmemPage first = e.is2M() ? Rmp.base2M(access.page()) : access.page();
      rmp.validate(first, e.order(), true); // the guest's PVALIDATE just before this access
      long firstGfn = (e.gpa() >>> 12) - (access.page().index() - first.index());
      for (long g = firstGfn; g < firstGfn + (1L << e.order()); g++) {
        validateOnUse.remove(g);
      }
      return null;
    }
    if (e.assigned() && !e.validated()) {
      vcEvents.incrementAndGet();
      return new VcpuExit.GuestException(VcpuExit.GuestException.VC, VC_PAGE_NOT_VALIDATED, access.gpa());
    }
    return null;
  }

  @Override
  public GuestCall guestCall(long nr, long[] args) {
    if (nr == PVALIDATE) {
      return GuestCall.finished(new GuestCall.Result(pvalidate(arg(args, 0), arg(args, 1), arg(args, 2))));
    }
    if (nr == VMGEXIT_MSR) {
      return PageStateChange.msr(arg(args, 0));
    }
    return ArchHooks.super.guestCall(nr, args);
  }

  private static long arg(long[] args, int i) {
    return i < args.length ? args[i] : 0;
  }

  private long pvalidate(long gpa, long size, long validate) {
    int order = size == 1 ? ORDER_2M : 0;
    if ((size != 0 && size != 1) || (validate != 0 && validate != 1) || (gpa & ((Folio.PAGE_SIZE << order) - 1)) != 0) {
      return PVALIDATE_FAIL_INPUT;
    }
    long gfn = gpa >>> 12;
    nestedFaults.remove(gfn); // a nested fault that exited before reaching the page is not carried over
    GmemPage page = rmp.pageAt(gfn);
    if (page == null) {
      nestedFaults.add(gfn);
      return PVALIDATE_NESTED_FAULT;
    }
    RmpEntry e = rmp.get(page);
    if (e.order() != order) {
      return PVALIDATE_FAIL_SIZEMISMATCH;
    }
    if (e.validated() == (validate == 1)) {
      if (validate == 1) {
        vcEvents.incrementAndGet();
        throw new MemoryExitException(new VcpuExit.GuestException(VcpuExit.GuestException.VC, VC_DOUBLE_VALIDATION, gpa));
      }
      return PVALIDATE_FAIL_NOUPDATE;
    }
    rmp.validate(page, order, validate == 1);
    return PVALIDATE_SUCCESS;
  }

  /**
   * {@code KVM_CAP_VM_MOVE_ENC_CONTEXT_FROM}: this (destination) VM takes the source's ASID, RMP,
   * launch state and digest, as KVM moves the SEV context; the source keeps nothing.
   */
  @Override
  public void moveEncryptionContextFrom(ArchHooks source) {
    if (!(source instanceof SnpArch s)) {
      throw GmemException.einval("the source VM's arch is not SEV-SNP");
    }
    synchronized (s) {
      synchronized (this) {
        rmp.takeFrom(s.rmp);
        asid = s.asid;
        launched = s.launched;
        measurement = s.measurement;
        digest.copyFrom(s.digest);
        unreclaimable.addAll(s.unreclaimable);
        killOnReclaimFailure = s.killOnReclaimFailure;
        cpuidPolicy = s.cpuidPolicy;
      }
    }
  }

  // ---- launch ---------------------------------------------------------------------------------

  /** {@code snp_launch_update}'s checks: before LAUNCH_FINISH, a page type userspace may pass. */
  @Override
  public synchronized void validatePopulate(long gpa, long npages, long flags, boolean inPlace) {
    checkAlive();
    if (launched) {
      throw GmemException.einval("SNP_LAUNCH_UPDATE after SNP_LAUNCH_FINISH");
    }
    PageType type = PageType.of(flags);
    if (type == null || type == PageType.VMSA) {
      throw GmemException.einval("SNP_LAUNCH_UPDATE page type " + flags + " (NORMAL 1, ZERO 3, UNMEASURED 4, SECRETS 5, CPUID 6)");
    }
    launchedThisCall = 0;
  }

  /**
   * One page of {@code SNP_LAUNCH_UPDATE} ({@code sev_gmem_post_populate}): place the contents by
   * type, RMPUPDATE to an immutable validated guest page, extend the digest. A CPUID page the
   * firmware rejects is not added: the corrected table is copied back to the source (or left in
   * the page when populating in place) and the call fails with EIO, as KVM reports the firmware's
   * INVALID_PARAM.
   */
  @Override
  public synchronized boolean postPopulate(GmemPage page, long gfn, ByteBuffer source, ByteBuffer target, long flags) {
    if (launchedThisCall == launchUpdateLimit) {
      return false;
    }
    PageType type = PageType.of(flags);
    long gpa = gfn << 12;
    switch (type) {
      case CPUID -> {
        byte[] corrected = CpuidTable.check(source != null ? source : target, cpuidPolicy);
        if (corrected != null) {
          (source != null ? source : target).duplicate().put(corrected);
          throw new GmemException(Errno.EIO, "SNP_LAUNCH_UPDATE: the firmware rejected the CPUID page at gpa 0x"
              + Long.toHexString(gpa) + " (INVALID_PARAM); the corrected table was copied back to the source");
        }
        copy(source, target);
      }
      case ZERO -> zero(target);
      case SECRETS -> {
        zero(target);
        byte[] keys = new byte[4 * 32]; // VMPCK0..3 at 0x20 (the firmware's; the rest of the page is the OS area)
        random.nextBytes(keys);
        target.duplicate().putInt(0, 3).position(0x20).put(keys);
      }
      default -> copy(source, target);
    }
    // The page now holds exactly the source's bytes: hashing the VMM's (heap) copy measures the same
    // contents without reading the page back through a direct buffer.
    digest.update(type, gpa, type != PageType.NORMAL ? null : source != null ? source.duplicate() : target.duplicate().clear());
    rmp.assign(page, gfn, 0, asid, true, true);
    launchedThisCall++;
    return true;
  }

  private static void copy(ByteBuffer source, ByteBuffer target) {
    if (source != null) {
      target.duplicate().put(source.duplicate());
    }
  }

  private static final byte[] ZEROS = new byte[(int) Folio.PAGE_SIZE];

  private static void zero(ByteBuffer target) {
    target.duplicate().clear().put(ZEROS);
  }

  /** {@code SNP_LAUNCH_FINISH}: the digest becomes the measurement, launch pages become ordinary guest pages. */
  @Override
  public synchronized void finalizeLaunch() {
    checkAlive();
    if (launched) {
      throw GmemException.einval("SNP_LAUNCH_FINISH was already issued");
    }
    rmp.finishLaunch();
    measurement = digest.value();
    launched = true;
  }
}
