package dev.gmem.arch.snp;

import dev.gmem.api.Shareability;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.ArchHooks.ContentEffect;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.tck.ArchContractTests;

/**
 * gmem-arch-snp through the contract kit (gmem-tck), on the real kernel (kvm backend): populate
 * with NORMAL pages, VMSA pages refused, and a guest that PVALIDATEs each page just before its first
 * private use ({@link SnpArch#validateBeforeFirstUse}), so that the kit's guest accesses complete
 * and pages the guest never uses are never prepared.
 */
class SnpContractTest extends ArchContractTests {
  @Override
  protected ArchProvider provider() {
    return new SnpArchProvider();
  }

  @Override
  protected VmType vmType() {
    return VmType.SNP;
  }

  @Override
  protected void beforePrivateAccess(Vm vm, long gpa, long length) {
    arch(vm, SnpArch.class).orElseThrow().validateBeforeFirstUse(gpa, length);
  }

  /** {@code SNP_LAUNCH_FINISH} after the image is built, as a VMM does before the guest runs. */
  @Override
  protected void launch(Vm vm) {
    vm.finalizeLaunch();
  }

  /** What SEV-SNP documents: ciphertext leaving private use; the plugin keeps bytes entering it (populate in place). */
  @Override
  protected ContentEffect expectedContentEffect(Vm vm, Shareability from, Shareability to) {
    return from == Shareability.PRIVATE ? ContentEffect.SCRAMBLE : ContentEffect.PRESERVE;
  }

  @Override
  protected boolean initSharedRefused(Vm vm) {
    return true;
  }

  @Override
  protected boolean noDirectMapRefused(Vm vm) {
    return true;
  }

  /** An RMP entry is at most 2 MiB. */
  @Override
  protected int documentedMaxMappingOrder(boolean isPrivate) {
    return isPrivate ? RmpEntry.ORDER_2M : -1;
  }

  @Override
  protected long populateFlags() {
    return PageType.NORMAL.value();
  }

  @Override
  protected long invalidPopulateFlags() {
    return PageType.VMSA.value();
  }
}
