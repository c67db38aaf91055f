package dev.gmem.core.plugin.testing;

import dev.gmem.api.HostInfo;
import dev.gmem.api.HugePagePool;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/** Host descriptions for probes; no real host is probed in plugin tests. */
public final class TestHosts {

  private TestHosts() {}

  /** KVM, userfaultfd and memfd_secret, a 2 MiB hugetlb pool but no 1 GiB one. */
  public static HostInfo ordinary() {
    return host(List.of(new HugePagePool(2L << 20, 16, 16, 0, 0)));
  }

  /** As {@link #ordinary()}, plus a 1 GiB hugetlb pool. */
  public static HostInfo withGigPages() {
    return host(List.of(new HugePagePool(2L << 20, 16, 16, 0, 0), new HugePagePool(1L << 30, 2, 2, 0, 0)));
  }

  private static HostInfo host(List<HugePagePool> pools) {
    return new HostInfo("6.18.0-test", true, Optional.empty(), 12, Map.of(), 0, 0b110011, true, true, pools);
  }
}
