package dev.gmem.core.spi;

import dev.gmem.api.GmemRuntime;
import dev.gmem.api.spi.AllocatorProvider;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.FeatureProvider;
import dev.gmem.core.convert.TestRuntimes;
import java.util.List;
import java.util.Map;

/** Runtimes with the SPI fixtures: {@link FixtureArch} for SW_PROTECTED, {@link FixtureFeature}, {@link CountingAllocator}. */
final class SpiFixtures {
  private SpiFixtures() {}

  static GmemRuntime runtime(String backend) {
    return TestRuntimes.withProviders(backend,
        Map.of(ArchProvider.class, List.of(FixtureArchProvider.class),
            FeatureProvider.class, List.of(FixtureFeature.Provider.class),
            AllocatorProvider.class, List.of(CountingAllocator.Provider.class, CountingAllocator.BlockProvider.class)),
        Map.of("gmem.arch.SW_PROTECTED", FixtureArchProvider.ID, "gmem.allocator", "spi-counting"));
  }
}
