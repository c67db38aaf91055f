package dev.gmem.arch.tdx;

import dev.gmem.api.spi.GmemPage;
import java.util.List;
import java.util.Optional;

/**
 * What the modelled TDX module holds for one TD, for tests and for a VMM developing against TDX
 * without the hardware: the TD's state, its Secure-EPT leaves with the PAMT owner of each host
 * page, MRTD, and the SEAMCALLs executed. Reached with {@code vm.arch(TdxModule.class)}.
 *
 * <p><b>Real and modelled.</b> There is no TDX hardware here. The guest's memory is real (gmem's
 * guest_memfd or memfd pages, really copied, zeroed and punched); the TD's vCPUs are gmem's
 * software vCPU, or a real vCPU of the DEFAULT KVM VM under the TD (private pages are covered in
 * the mapping that KVM sees, so its accesses to them come back to gmem's fault path). The TDX
 * module — S-EPT, PAMT, the SEAMCALL state machine, MRTD — is this model: MRTD is a real SHA-384
 * computed by the module's rule, but no memory is encrypted and the host can read private pages
 * through gmem's windows (see the README's threat model).
 *
 * <p>Fault injection ({@link #injectFailure}) stands in for the firmware errors KVM must survive;
 * with it the KVM rules (OPERAND_BUSY retried once, any other error {@code KVM_BUG_ON}: VM dead and
 * the page leaked) can be exercised.
 */
public interface TdxModule {

  /** The TD's state. */
  TdState state();

  /** The S-EPT leaf covering private {@code gpa} (no shared bit), if any. */
  Optional<SeptEntry> sept(long gpa);

  /** Every S-EPT leaf, in GPA order. */
  List<SeptEntry> septEntries();

  /** The S-EPT leaf whose host page is {@code page} (the PAMT's owner record), if any. */
  Optional<SeptEntry> pamt(GmemPage page);

  /**
   * MRTD, the TD's build-time measurement: SHA-384 over the 128-byte blocks that
   * {@code TDH.MEM.PAGE.ADD} and {@code TDH.MR.EXTEND} fed it, as {@code TDH.MR.FINALIZE} finished
   * it (48 bytes).
   *
   * @throws dev.gmem.api.GmemException EINVAL while the TD is still being built
   */
  byte[] mrtd();

  /** The SEAMCALLs executed so far, in order (retries and failures included). */
  List<SeamcallRecord> seamcalls();

  /**
   * The next execution of {@code call} completes with {@code status} instead of succeeding (and
   * changes nothing in the module). Calls queue: two injections of OPERAND_BUSY fail the first
   * attempt and KVM's one retry. {@link TdxAbi#TDX_OPERAND_BUSY} is retried once where KVM
   * retries; any other status is {@code KVM_BUG_ON}: the VM dies and a page being removed leaks.
   */
  void injectFailure(Seamcall call, long status);

  /**
   * An interrupt becomes pending for the TD's vCPU ({@code kvm_vcpu_has_events}): a MapGPA that
   * has more chunks to go stops with {@code TDVMCALL_STATUS_RETRY}, and the interrupt is then
   * delivered (no longer pending).
   */
  void raiseInterrupt();

  /** Whether an interrupt is pending. */
  boolean interruptPending();

  /**
   * Enables 2 MiB private mappings as the TDX huge-page RFC v5 does with module parameter
   * {@code tdx_huge_page}: only once the TD is RUNNABLE, only if the TDX module reports
   * {@code ENHANCED_DEMOTE_INTERRUPTIBILITY}, and not for a 2 MiB range that was added at 4 KiB
   * at build time or that the guest accepted at 4 KiB. Off by default.
   */
  void enableHugePages(boolean enhancedDemoteInterruptibility);

  /** The host pages this TD's removals could not reclaim ({@code KVM_BUG_ON}): leaked for good. */
  List<GmemPage> leakedPages();
}
