package dev.gmem.api.spi;

import dev.gmem.api.Api;

/**
 * Provides an optional feature (direct-map removal, userfault, …). A feature is on when its jar is
 * on the class path and its probe succeeds, unless {@code gmem.feature.<id>=false}.
 *
 * <p>EXPERIMENTAL, as the features it carries (direct-map removal, KVM Userfault) are unmerged
 * kernel proposals.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.1")
public interface FeatureProvider extends GmemProvider {

  /** Creation-flag bits the feature gives meaning to (e.g. NO_DIRECT_MAP); they become valid creation flags. */
  default long creationFlags() {
    return 0;
  }

  /**
   * {@code KVM_MEM_*} memslot flag bits the feature gives meaning to (KVM Userfault: 1 &lt;&lt; 3);
   * they become valid flags of guest_memfd memslots, carried in {@link dev.gmem.api.Memslot#flags()}
   * (never passed to a kernel that does not know them), and an existing memslot may be re-issued
   * with only these bits changed (the late toggle). The feature reads them from
   * {@link GuestFault#slot()}.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default int memslotFlags() {
    return 0;
  }

  /** The feature instance for one runtime. */
  Feature create(HostMemory host);
}
