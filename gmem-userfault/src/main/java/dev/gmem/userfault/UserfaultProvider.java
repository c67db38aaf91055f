package dev.gmem.userfault;

import dev.gmem.api.HostInfo;
import dev.gmem.api.spi.Feature;
import dev.gmem.api.spi.FeatureProvider;
import dev.gmem.api.spi.HostMemory;
import dev.gmem.api.spi.Support;

/**
 * Feature {@code userfault}: gives meaning to memslot flag {@code KVM_MEM_USERFAULT} (bit 3) and
 * offers {@link Userfault} through {@code runtime.feature(Userfault.class)}.
 */
public final class UserfaultProvider implements FeatureProvider {
  @Override
  public String id() {
    return "userfault";
  }

  @Override
  public int memslotFlags() {
    return Userfault.MEM_USERFAULT;
  }

  /** Always usable: the memslot part needs nothing of the host; the userfaultfd engine says so itself when the kernel lacks it. */
  @Override
  public Support probe(HostInfo host) {
    return Support.yes(host.userfaultfd() ? "KVM Userfault in user space; userfaultfd available" : "KVM Userfault in user space; no userfaultfd");
  }

  @Override
  public Feature create(HostMemory host) {
    return new UserfaultFeature(host, host.host().kvm() && KvmUserfaultProbe.kernelHasUserfault());
  }
}
