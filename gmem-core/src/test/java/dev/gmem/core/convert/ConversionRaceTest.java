package dev.gmem.core.convert;

import dev.gmem.api.GmemRuntime;
import dev.gmem.core.conformance.Backends;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** {@link ConversionRace} on core's 4 KiB allocator, on every backend. */
class ConversionRaceTest {

  static java.util.stream.Stream<String> backends() {
    return Backends.names();
  }

  @ParameterizedTest
  @MethodSource("backends")
  void faultsRacingConversionsNeverLeakAndNeverLoseSharedWrites(String backend) throws Exception {
    try (GmemRuntime rt = TestRuntimes.withZeroingArch(backend)) {
      ConversionRace.run(rt, 0, 64, 1, 4000);
    }
  }
}
