package dev.gmem.alloc.hugetlb;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.core.conformance.Backends;
import dev.gmem.core.convert.ConversionRace;
import dev.gmem.core.convert.TestRuntimes;
import java.util.stream.Stream;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Core's conversion race ({@link ConversionRace}) on two real 2 MiB pages: host accessors, kernel
 * copies from the raw mapping and software-vCPU accesses race conversions and punches of single
 * pages and of whole huge pages, which split, merge and free them.
 */
class HugetlbConversionRaceTest {
  /**
   * The file's 2 pages and 2 more: a to-private of huge pages the raw mapping reached detaches
   * them, which needs a free page per huge page converted (a kernel reference may hold the old one).
   */
  @RegisterExtension static final HugePool POOL = HugePool.of(4, 0);

  static Stream<String> backends() {
    return Backends.names();
  }

  @ParameterizedTest
  @MethodSource("backends")
  void faultsRacingConversionsOfHugePagesNeverLeakAndNeverLoseSharedWrites(String backend) throws Exception {
    try (GmemRuntime rt = TestRuntimes.withZeroingArch(backend)) {
      ConversionRace.run(rt, GmemFlags.hugePageSize(21), 1024, 512, 4000);
    }
  }
}
