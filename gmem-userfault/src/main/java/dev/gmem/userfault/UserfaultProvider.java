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

  /**
   * Always usable: the memslot part needs nothing of the host; the userfaultfd engine says so
   * itself when the kernel lacks it. The message says which path real vCPUs' userfaults take.
   */
  @Override
  public Support probe(HostInfo host) {
    KvmUserfaultProbe.Result k = kernelProbe(host);
    String path = k.present() ? "KVM Userfault passed through to the kernel (" + k.reason() + ")"
        : "KVM Userfault in user space, gmem's stage-2 view (kernel probe: " + k.reason() + ")";
    return Support.yes(path + (host.userfaultfd() ? "; userfaultfd available" : "; no userfaultfd"));
  }

  @Override
  public Feature create(HostMemory host) {
    return new UserfaultFeature(host, kernelProbe(host.host()));
  }

  private static KvmUserfaultProbe.Result kernelProbe(HostInfo host) {
    return host.kvm() ? Probed.KERNEL : new KvmUserfaultProbe.Result(false, -1, -1, "absent: no /dev/kvm");
  }

  /** The kernel's answer, a fact of the host: probed once, on first use. */
  private static final class Probed {
    static final KvmUserfaultProbe.Result KERNEL = KvmUserfaultProbe.probe();
  }
}
