package dev.gmem.arch.tdx;

import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.ArchHooks.ContentEffect;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.Shareability;
import dev.gmem.arch.tdx.module.TdxArchProvider;
import dev.gmem.tck.ArchContractTests;

/**
 * gmem-tck's arch contracts on the TDX arch, on the real runtime. What TDX documents where arches
 * differ: INIT_SHARED and NO_DIRECT_MAP refused, private pages map at 4 KiB, contents are zeroed
 * when they leave private, populate takes {@code KVM_TDX_MEASURE_MEMORY_REGION}; and before the
 * guest touches private memory the TD must be RUNNABLE and the guest accepts the pages
 * ({@code TDG.MEM.PAGE.ACCEPT}); after populating the image the TD is finalized ({@link #launch}).
 */
class TdxContractTest extends ArchContractTests {
  @Override
  protected ArchProvider provider() {
    return new TdxArchProvider();
  }

  @Override
  protected VmType vmType() {
    return VmType.TDX;
  }

  @Override
  protected void beforePrivateAccess(Vm vm, long gpa, long length) {
    TdxModule tdx = arch(vm, TdxModule.class).orElseThrow();
    if (tdx.state() == TdState.INITIALIZED) {
      vm.finalizeLaunch();
    }
    for (long p = gpa; p < gpa + length; p += PAGE) {
      vm.softwareVcpu().hypercall(TdxAbi.TDG_MEM_PAGE_ACCEPT, p);
    }
  }

  /** {@code KVM_TDX_FINALIZE_VM} after the image is built: no vCPU of a TD runs before it. */
  @Override
  protected void launch(Vm vm) {
    vm.finalizeLaunch();
  }

  @Override
  protected ContentEffect expectedContentEffect(Vm vm, Shareability from, Shareability to) {
    return from == Shareability.PRIVATE && to != Shareability.PRIVATE ? ContentEffect.ZERO : ContentEffect.PRESERVE;
  }

  @Override
  protected boolean initSharedRefused(Vm vm) {
    return true;
  }

  @Override
  protected boolean noDirectMapRefused(Vm vm) {
    return true;
  }

  @Override
  protected int documentedMaxMappingOrder(boolean isPrivate) {
    return isPrivate ? 0 : -1;
  }

  @Override
  protected long populateFlags() {
    return TdxAbi.MEASURE_MEMORY_REGION;
  }
}
