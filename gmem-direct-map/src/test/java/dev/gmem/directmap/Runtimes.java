package dev.gmem.directmap;

import dev.gmem.api.GmemRuntime;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.AllocatorProvider;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.core.convert.TestRuntimes;
import dev.gmem.core.spi.CountingAllocator;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/** Runtimes for the plugin's tests; this module's own jar (and so the feature) is on the class path. */
final class Runtimes {
  private Runtimes() {}

  static Stream<String> backends() {
    return Files.exists(Path.of("/dev/kvm")) ? Stream.of("kvm", "memfd") : Stream.of("memfd");
  }

  static GmemRuntime open(String backend) {
    return GmemRuntime.builder().property("gmem.backend", backend).build();
  }

  /** The feature switched off: NO_DIRECT_MAP and WRITE must be what they are on 6.18. */
  static GmemRuntime withoutFeature(String backend) {
    return GmemRuntime.builder().property("gmem.backend", backend).property("gmem.feature." + DirectMapProvider.ID, "false").build();
  }

  /** SW_PROTECTED served by {@link RecordingArch}; {@code blocks} also offers 2 MiB folios ({@link CountingAllocator#BLOCKS}). */
  static GmemRuntime withRecordingArch(String backend) {
    return TestRuntimes.withProviders(backend,
        Map.of(ArchProvider.class, List.of(RecordingArch.Provider.class),
            AllocatorProvider.class, List.of(CountingAllocator.BlockProvider.class)),
        Map.of("gmem.arch.SW_PROTECTED", RecordingArch.ID));
  }

  /** TDX (and SNP) served by an arch with v12's rule: no NO_DIRECT_MAP. */
  static GmemRuntime withTdxRule(String backend) {
    return TestRuntimes.withArch(backend, TdxRuleArch.Provider.class, TdxRuleArch.ID, VmType.TDX, VmType.SNP);
  }

  static DirectMapFeature feature(GmemRuntime rt) {
    return (DirectMapFeature) rt.feature(DirectMap.class).orElseThrow();
  }
}
