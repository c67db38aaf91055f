package dev.gmem.arch.snp;

import dev.gmem.api.HostInfo;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.ArchContext;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.HostMemory;
import dev.gmem.api.spi.Support;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Serves {@code VmType.SNP} with {@link SnpArch}: on hosts whose kernel does not offer
 * {@code KVM_X86_SNP_VM} (this project's), gmem runs each SNP VM over a real DEFAULT KVM VM and this
 * plugin applies the SEV-SNP rules.
 */
public final class SnpArchProvider implements ArchProvider {
  public static final String ID = "snp";

  /** ASIDs of this runtime's SNP guests, from 1 (0 is the host's). */
  private final AtomicInteger asids = new AtomicInteger();

  @Override
  public String id() {
    return ID;
  }

  /** Says what is modelled: `gmem info` prints it. */
  @Override
  public Support probe(HostInfo host) {
    return Support.yes("no SNP hardware used. Real: the memory, conversions, a DEFAULT KVM VM underneath (its real vCPUs make shared accesses only:"
        + " no C-bit on this host, so they get memory-fault exits, never #VC),"
        + " the launch digest (SHA-384 PAGE_INFO chain), KVM's page-state-change exits. Modelled: RMP, PSMASH, PVALIDATE/#VC"
        + " (software vCPU), SNP_LAUNCH_UPDATE's page handling, encryption (private bytes stored plain; the host sees a scramble)");
  }

  @Override
  public Set<VmType> vmTypes() {
    return Set.of(VmType.SNP);
  }

  /** An SNP VM must be able to report leaks and its death: gmem-core always passes its context. */
  @Override
  public ArchHooks create(VmType type, HostMemory host) {
    throw new IllegalStateException("the SNP arch needs an ArchContext (gmem-api 0.2)");
  }

  @Override
  public ArchHooks create(VmType type, HostMemory host, ArchContext vm) {
    return new SnpArch(vm, asids.incrementAndGet());
  }
}
