package dev.gmem.arch.pkvm;

import dev.gmem.api.HostInfo;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.ArchContext;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.HostMemory;
import dev.gmem.api.spi.Support;
import java.util.Set;

/** Serves {@link VmType#PKVM} with {@link PkvmHypervisor}; the VM runs over a real DEFAULT KVM VM. */
public final class PkvmArchProvider implements ArchProvider {
  public static final String ID = "pkvm";

  @Override
  public String id() {
    return ID;
  }

  @Override
  public Set<VmType> vmTypes() {
    return Set.of(VmType.PKVM);
  }

  /** What comes from gmem here: x86 has no pKVM, so the hypervisor's rules run in this plugin. */
  @Override
  public Support probe(HostInfo host) {
    return Support.yes("PKVM over a DEFAULT KVM VM; from gmem, not a hypervisor: stage-2 ownership per page,"
        + " MEM_SHARE/MEM_UNSHARE/MEM_RELINQUISH through the software vCPU, host faults decided by ownership,"
        + " unshare parked in NONE until pins drain");
  }

  @Override
  public ArchHooks create(VmType type, HostMemory host) {
    throw new IllegalStateException("the pKVM arch needs an ArchContext (gmem-core 0.2 passes one)");
  }

  @Override
  public ArchHooks create(VmType type, HostMemory host, ArchContext vm) {
    return new PkvmHypervisor(vm);
  }
}
