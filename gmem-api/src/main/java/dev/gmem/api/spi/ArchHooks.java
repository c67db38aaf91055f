package dev.gmem.api.spi;

import dev.gmem.api.Api;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.GuestCall;
import dev.gmem.api.Shareability;
import dev.gmem.api.VcpuExit;
import java.nio.ByteBuffer;

/**
 * Per-VM architecture hooks, mirroring the kernel's {@code kvm_arch_gmem_*} calls and the vendor
 * callbacks around them. Every method has a default that is right for a VM without
 * hardware-protected memory, so an arch overrides only what its firmware does differently.
 *
 * <p><b>Page identity.</b> One instance serves every inode of its VM. The hooks that name a page
 * get a {@link GmemPage} (inode + index); the 0.1 overloads that get only an index remain as the
 * defaults the new ones delegate to, so 0.1 plugins keep working, but an arch with per-page state
 * must override the {@code GmemPage} ones.
 *
 * <p><b>Failure.</b> Hooks called before a point of no return ({@link #prepareConversion},
 * {@link #prepare}, {@link #validatePopulate}, {@link #postPopulate}) may throw a
 * {@link GmemException}; the operation then changes nothing. Hooks called after it
 * ({@link #invalidate}, {@link #drained}, {@link Prepared#commit()}) must not throw: a firmware
 * failure there is reported through {@link ArchContext#leak} and {@link ArchContext#bug}.
 *
 * <p><b>Locking.</b> Page hooks run under the inode's invalidate lock (shared for faults,
 * exclusive for conversion, punch and drain); they must not call back into gmem's file or VM
 * API.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.1")
public interface ArchHooks {

  /** Whether VMs with these hooks have private memory (and so refuse INIT_SHARED unless {@link #supportsInitShared()}). */
  default boolean hasPrivateMemory() {
    return false;
  }

  /** {@code kvm_arch_supports_gmem_init_shared}. */
  default boolean supportsInitShared() {
    return !hasPrivateMemory();
  }

  /** {@code kvm_arch_gmem_supports_no_direct_map}. */
  default boolean supportsNoDirectMap() {
    return true;
  }

  // ---- preparation and invalidation ----------------------------------------------------

  /**
   * {@code kvm_arch_gmem_prepare}: called once per folio, on the first guest fault of a private
   * page, with the guest frame of the folio's first page, its first page and its order. May fail;
   * the fault then fails and the folio stays unprepared.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default void prepare(GmemPage first, long gfn, int order) throws GmemException {
    prepare(gfn, first.index(), order);
  }

  /** 0.1 form of {@link #prepare(GmemPage, long, int)}: the index without its inode. */
  @Api(status = Api.Status.DEPRECATED, since = "0.2")
  @Deprecated(since = "0.2")
  default void prepare(long gfn, long index, int order) throws GmemException {}

  /**
   * {@code kvm_arch_gmem_invalidate}: pages {@code [first, first+nrPages)} leave private use
   * (their folio is freed, or converted to shared) or, for pages that were never private, leave
   * the filemap. Runs after the point of no return and must not throw; a page the firmware cannot
   * take back is reported with {@link ArchContext#leak}, a VM that must die with
   * {@link ArchContext#bug}.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default void invalidate(GmemPage first, long nrPages) {
    invalidate(first.index(), nrPages);
  }

  /** 0.1 form of {@link #invalidate(GmemPage, long)}. */
  @Api(status = Api.Status.DEPRECATED, since = "0.2")
  @Deprecated(since = "0.2")
  default void invalidate(long index, long nrPages) {}

  // ---- conversion ----------------------------------------------------------------------

  /** What a conversion does to the contents of converted pages. */
  default ContentEffect contentEffect(Shareability from, Shareability to) {
    return ContentEffect.PRESERVE;
  }

  /**
   * The veto before the point of no return: called once per run of pages whose shareability a
   * conversion changes, after host mappings of the range are zapped and references are checked,
   * before anything is committed. Throw to refuse (pKVM: the hypervisor will not unshare a page
   * the host still maps, EPERM; TDX/SNP firmware busy, EBUSY/EAGAIN): the conversion then fails
   * with that exception and changes nothing, and runs accepted earlier in the same call are
   * {@link Prepared#abort() aborted}. The returned {@link Prepared} is committed after the point
   * of no return, after {@link #invalidate} of the run and before the new shareability is
   * published.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default Prepared prepareConversion(Conversion run) throws GmemException {
    return Prepared.NOTHING;
  }

  /**
   * A conversion to private found pages with references beyond the filemap's own (pins, a
   * mapping in use): what to do about them. {@link BusyPolicy#EAGAIN} (upstream's in-place
   * conversion, the default) fails the call with EAGAIN at the first such page.
   * {@link BusyPolicy#PARK} (pKVM's {@code NONE_SHARED}) converts the others and parks the busy
   * pages in {@link Shareability#NONE} — neither host nor guest may fault them — until their last
   * reference goes; then they become private and {@link #drained} is called. {@code run} is the
   * whole requested range with its current shareability where uniform ({@code from} is the
   * shareability of its first page otherwise).
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default BusyPolicy busyReferences(Conversion run) {
    return BusyPolicy.EAGAIN;
  }

  /**
   * Pages {@code [first, first+nrPages)} parked in {@link Shareability#NONE} lost their last
   * extra reference and are now private (pKVM's final-{@code folio_put} callback). Runs under the
   * exclusive invalidate lock, after the new shareability is stored; must not throw.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default void drained(GmemPage first, long nrPages) {}

  // ---- population ----------------------------------------------------------------------

  /**
   * Checks a populate request before anything happens (TDX: the TD is still being built and
   * {@code flags} holds only MEASURE; SNP: a known page type). Throw to refuse; nothing changes.
   * The default accepts {@code flags == 0} only.
   *
   * @param gpa    first guest physical address, page aligned
   * @param npages pages requested, at least 1
   * @param flags  the arch's populate flags (measure, page type)
   * @param inPlace whether the source is the pages' own contents (no source buffer)
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default void validatePopulate(long gpa, long npages, long flags, boolean inPlace) throws GmemException {
    if (flags != 0) {
      throw GmemException.einval("this VM type defines no populate flags (0x" + Long.toHexString(flags) + ")");
    }
  }

  /**
   * {@code kvm_gmem_populate}'s post-populate callback for one private page: place the initial
   * contents (TDX PAGE.ADD + MR.EXTEND, SNP LAUNCH_UPDATE). {@code source} is the VMM's 4 KiB
   * (read-write, so a firmware correction can be copied back, as SNP does for a rejected CPUID
   * page), or null to populate in place; {@code target} is the page itself (4 KiB, read-write,
   * valid only during the call). Return false to stop before this page without touching it — the
   * firmware wants the caller to resume here (partial progress); gmem then returns the pages
   * done so far. Throw to fail: on the first page the call fails, later it returns the progress.
   * The default copies {@code source} into {@code target}.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default boolean postPopulate(GmemPage page, long gfn, ByteBuffer source, ByteBuffer target, long flags) throws GmemException {
    populate(gfn, page.index(), source);
    if (source != null) {
      target.put(source.duplicate());
    }
    return true;
  }

  /** 0.1 form of the post-populate callback; called by the default {@link #postPopulate}, which also copies. */
  @Api(status = Api.Status.DEPRECATED, since = "0.2")
  @Deprecated(since = "0.2")
  default void populate(long gfn, long index, ByteBuffer src) throws GmemException {}

  /**
   * The launch-finalize step (TDX {@code KVM_TDX_FINALIZE_VM}, SNP {@code SNP_LAUNCH_FINISH}):
   * the initial image is complete; later populates and runtime faults follow the arch's
   * post-launch rules. The default has no launch state and accepts any number of calls.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default void finalizeLaunch() throws GmemException {}

  // ---- mapping and faultability --------------------------------------------------------

  /**
   * {@code gmem_max_mapping_level}: the largest page order the guest may map {@code page} at,
   * asked with the arch's own per-page state in reach (SNP: the RMP entry's page size).
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default int maxMappingOrder(GmemPage page, long gfn, boolean isPrivate) {
    return maxMappingOrder(gfn, isPrivate);
  }

  /** 0.1 form of {@link #maxMappingOrder(GmemPage, long, boolean)}. */
  @Api(status = Api.Status.DEPRECATED, since = "0.2")
  @Deprecated(since = "0.2")
  default int maxMappingOrder(long gfn, boolean isPrivate) {
    return Folio.PUD_ORDER;
  }

  /**
   * Whether a guest access carries its own private bit (TDX: the GPA's shared bit; SNP: the
   * C-bit), so that its kind can disagree with the page's attributes and the fault exits to user
   * space ({@code KVM_EXIT_MEMORY_FAULT}). When false (the default) the kind is the page's: an
   * access to a private page is private, as {@code kvm_mmu_page_fault} sets PFERR_PRIVATE_ACCESS
   * from {@code kvm_mem_is_private} for SW_PROTECTED, and a VM without private memory only makes
   * shared accesses. Both vCPU paths of a VM apply this one rule.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default boolean privateBitInAccess() {
    return false;
  }

  /**
   * Where an access's private bit is a bit of its guest physical address (TDX: the shared bit,
   * GPA bit 47 for a 4-level-EPT TD, {@code kvm_gfn_direct_bits}), that bit; 0 (the default) where
   * it is not. A real vCPU's access that the kernel hands back (see {@link #privateBitInAccess()})
   * is then resolved at the GPA without the bit, as a private access when the bit is clear and a
   * shared one when it is set, so that both vCPU paths see the same access kind; with 0 a real
   * vCPU's accesses are shared.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default long sharedGpaBit() {
    return 0;
  }

  /**
   * Whether the host may fault {@code page} (pKVM: the hypervisor decides, whatever the VMM's
   * bookkeeping says). Asked on every host fault path. Default: SHARED pages only.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default boolean hostMayFault(GmemPage page, Shareability shareability) {
    return hostMayFault(page.index(), shareability);
  }

  /** 0.1 form of {@link #hostMayFault(GmemPage, Shareability)}. */
  @Api(status = Api.Status.DEPRECATED, since = "0.2")
  @Deprecated(since = "0.2")
  default boolean hostMayFault(long index, Shareability shareability) {
    return shareability == Shareability.SHARED;
  }

  /**
   * {@code kvm_x86_ops.vcpu_pre_run}: whether a vCPU of the VM may run now. gmem asks before a
   * real vCPU's {@code KVM_RUN} and before any access or hypercall through the software vCPU, and
   * fails that call with what this throws, changing nothing (TDX: EINVAL until
   * {@code KVM_TDX_FINALIZE_VM}, as {@code tdx_vcpu_pre_run}). Once it has returned normally gmem
   * stops asking: a VM whose vCPUs may run never stops being runnable. The default lets them run.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default void vcpuPreRun() throws GmemException {}

  /**
   * A guest access through the software vCPU that passed the shareability check, after the
   * folio is in place and prepared: the arch's chance to raise what its hardware raises instead
   * of completing the access — TDX #VE for a private page that is AUGed but not yet accepted, SNP
   * #VC for an unvalidated page. Return null to let the access complete (the default), or the
   * exit to report; nothing is accessed then. Runs under the inode's invalidate lock (shared).
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default VcpuExit.GuestException guestAccess(GuestFault access) {
    return null;
  }

  // ---- guest-initiated calls -----------------------------------------------------------

  /**
   * A hypercall the guest issues through the software vCPU: the arch's protocol for it, which
   * turns it into the exits the VMM completes. The default is x86 KVM's own handling with
   * {@code KVM_CAP_EXIT_HYPERCALL} enabled for {@link VcpuExit.Hypercall#MAP_GPA_RANGE}: an
   * unaligned GPA, zero pages or a wrapping range return {@code -KVM_EINVAL} without an exit, a
   * valid range exits once, and any other number returns {@code -KVM_ENOSYS}.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default GuestCall guestCall(long nr, long[] args) {
    if (nr != VcpuExit.Hypercall.MAP_GPA_RANGE) {
      return GuestCall.finished(new GuestCall.Result(-VcpuExit.Hypercall.KVM_ENOSYS));
    }
    long gpa = args.length > 0 ? args[0] : 0;
    long npages = args.length > 1 ? args[1] : 0;
    long gfn = gpa >>> 12;
    if ((gpa & 0xfff) != 0 || npages == 0 || Long.compareUnsigned(gfn + npages, gfn) <= 0) {
      return GuestCall.finished(new GuestCall.Result(-VcpuExit.Hypercall.KVM_EINVAL));
    }
    return GuestCall.exits(VcpuExit.Hypercall.mapGpaRange(gpa, npages, args.length > 2 ? args[2] : 0));
  }

  /**
   * {@code KVM_CAP_VM_MOVE_ENC_CONTEXT_FROM}'s arch step, called on the destination VM's hooks
   * with the source VM's ({@code vm_move_enc_context_from}: same VM type, memslot layouts already
   * found to match) before anything has changed. Refuse by throwing — e.g. TDX: EINVAL when the
   * source TD is not finalized or the destination is — and the move fails with that errno, nothing
   * changed. Returning commits the move: these hooks then own the source's per-VM state (ASID or
   * HKID, RMP / S-EPT / ownership model) and gmem sends every later arch call for the moved inodes
   * here; the source's hooks get none. Must not fail after it has taken the state over.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default void moveEncryptionContextFrom(ArchHooks source) throws GmemException {}

  /** Content effects of a conversion. */
  @Api(status = Api.Status.STABLE, since = "0.1")
  enum ContentEffect {
    /** Bytes survive (software-protected, pKVM). */
    PRESERVE,
    /** Pages read as zero afterwards (TDX on removal from private). */
    ZERO,
    /** Bytes become unintelligible (SNP ciphertext seen as shared). */
    SCRAMBLE
  }

  /** What a conversion to private does with pages that still have references. */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  enum BusyPolicy {
    /** Fail the conversion with EAGAIN at the first busy page (upstream in-place conversion). */
    EAGAIN,
    /** Park busy pages in NONE until their references drain (pKVM). */
    PARK
  }
}
