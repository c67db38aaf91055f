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

  /** The feature instance for one runtime. */
  Feature create(HostMemory host);
}
