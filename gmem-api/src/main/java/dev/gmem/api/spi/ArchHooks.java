package dev.gmem.api.spi;

import dev.gmem.api.Api;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.Shareability;
import java.nio.ByteBuffer;

/**
 * Per-VM architecture hooks, mirroring the kernel's {@code kvm_arch_gmem_*} calls. Every method
 * has a default that is right for a VM without hardware-protected memory, so an arch overrides
 * only what its firmware does differently.
 */
@Api(status = Api.Status.STABLE, since = "0.1")
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

  /**
   * {@code kvm_arch_gmem_prepare}: called once per folio, on the first guest fault of a private
   * page, with the inode offset and the folio's order. May fail; the fault then fails.
   */
  default void prepare(long gfn, long index, int order) throws GmemException {}

  /**
   * {@code kvm_arch_gmem_invalidate}: pages {@code [index, index+nrPages)} leave private use (folio
   * freed, or converted to shared). Runs after the conversion's point of no return: must not fail.
   */
  default void invalidate(long index, long nrPages) {}

  /** What a conversion does to the contents of converted pages. */
  default ContentEffect contentEffect(Shareability from, Shareability to) {
    return ContentEffect.PRESERVE;
  }

  /**
   * {@code kvm_gmem_populate}'s post-populate callback: place {@code src} (or, when null, the
   * page's current contents) into private page {@code index} (TDX PAGE.ADD, SNP LAUNCH_UPDATE).
   */
  default void populate(long gfn, long index, ByteBuffer src) throws GmemException {}

  /** {@code gmem_max_mapping_level}: the largest page order the guest may map at {@code gfn}. */
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

  /** Whether the host may fault the page (pKVM: the hypervisor decides). Default: SHARED pages only. */
  default boolean hostMayFault(long index, Shareability shareability) {
    return shareability == Shareability.SHARED;
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
}
