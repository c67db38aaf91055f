package dev.gmem.api.spi;

import dev.gmem.api.Api;
import dev.gmem.api.HostInfo;

/**
 * What every plugin provider has: a unique id, a version, and a probe. Providers are found with
 * {@link java.util.ServiceLoader} (declare them in {@code META-INF/services} and in
 * {@code module-info} {@code provides}). A provider whose class fails to load or whose probe
 * throws is reported and skipped; it never takes the runtime down.
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public interface GmemProvider {

  /** Unique among providers of the same kind, e.g. {@code hugetlb}, {@code tdx}. */
  String id();

  /**
   * The provider's version; by default the jar's {@code Implementation-Version}, or on the module
   * path (where a named module's packages carry no manifest attributes) the module's version.
   */
  default String version() {
    String v = getClass().getPackage() == null ? null : getClass().getPackage().getImplementationVersion();
    if (v == null && getClass().getModule().getDescriptor() != null) {
      v = getClass().getModule().getDescriptor().rawVersion().orElse(null);
    }
    return v != null ? v : "unversioned";
  }

  /** Whether this provider can work on the host; called once per runtime. */
  default Support probe(HostInfo host) {
    return Support.yes("no host requirements");
  }
}
