package dev.gmem.directmap;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.HostInfo;
import dev.gmem.api.spi.Feature;
import dev.gmem.api.spi.FeatureProvider;
import dev.gmem.api.spi.HostMemory;
import dev.gmem.api.spi.Support;

/**
 * Registers the direct-map feature (id {@code direct-map}). On the class path and enabled it gives
 * meaning to {@link GmemFlags#NO_DIRECT_MAP} (bit 2) and {@link GmemFlags#WRITE} (bit 3); without
 * it both are EINVAL at creation, as on Linux 6.18. Needs {@code memfd_secret(2)} unless the
 * kernel's guest_memfd takes NO_DIRECT_MAP itself.
 */
public final class DirectMapProvider implements FeatureProvider {
  public static final String ID = "direct-map";

  @Override
  public String id() {
    return ID;
  }

  @Override
  public long creationFlags() {
    return GmemFlags.NO_DIRECT_MAP | GmemFlags.WRITE;
  }

  @Override
  public Support probe(HostInfo host) {
    if (host.guestMemfdSupports(GmemFlags.NO_DIRECT_MAP)) {
      return Support.yes("the kernel's guest_memfd takes NO_DIRECT_MAP (KVM_CAP_GUEST_MEMFD_FLAGS bit 2): passed through");
    }
    if (!host.memfdSecret()) {
      return Support.no("memfd_secret(2) fails on this host (CONFIG_SECRETMEM off, or secretmem.enable=0) and the kernel's guest_memfd has no NO_DIRECT_MAP");
    }
    return Support.yes("NO_DIRECT_MAP inodes in memfd_secret(2) memory (the kernel removes each page from its direct map)");
  }

  @Override
  public Feature create(HostMemory host) {
    return new DirectMapFeature(host);
  }
}
