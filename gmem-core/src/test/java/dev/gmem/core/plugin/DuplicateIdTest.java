package dev.gmem.core.plugin;

import static dev.gmem.api.PluginDescriptor.Kind.ALLOCATOR;
import static dev.gmem.api.PluginDescriptor.Kind.ARCH;
import static dev.gmem.api.PluginDescriptor.Kind.FEATURE;
import static dev.gmem.api.PluginDescriptor.Status.ACTIVE;
import static dev.gmem.api.PluginDescriptor.Status.DISABLED;
import static dev.gmem.api.PluginDescriptor.Status.NOT_SELECTED;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import dev.gmem.api.VmType;
import dev.gmem.api.spi.AllocatorProvider;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.FeatureProvider;
import dev.gmem.core.plugin.fixtures.DirectMapFeature;
import dev.gmem.core.plugin.fixtures.DirectMapFeatureFork;
import dev.gmem.core.plugin.fixtures.HugeAllocatorA;
import dev.gmem.core.plugin.fixtures.HugeAllocatorB;
import dev.gmem.core.plugin.fixtures.SnpModelArch;
import dev.gmem.core.plugin.fixtures.SnpModelArchFork;
import dev.gmem.core.plugin.testing.PluginJar;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Two jars declaring one id: an error naming both, unless the selection property picks one with
 * {@code id@<part of its location>}.
 */
class DuplicateIdTest extends RegistryTestSupport {

  private Path a;
  private Path b;

  @BeforeEach
  void jars() {
    a = write(PluginJar.named("a.jar")
        .provider(AllocatorProvider.class, HugeAllocatorA.class)
        .provider(ArchProvider.class, SnpModelArch.class)
        .provider(FeatureProvider.class, DirectMapFeature.class));
    b = write(PluginJar.named("b.jar")
        .provider(AllocatorProvider.class, HugeAllocatorB.class)
        .provider(ArchProvider.class, SnpModelArchFork.class)
        .provider(FeatureProvider.class, DirectMapFeatureFork.class));
  }

  @Test
  void sameIdInTwoJarsIsAnErrorNamingBothJarsAndNeitherIsUsed() {
    PluginRegistry registry = registry(Map.of(), a, b);

    assertEquals(List.of(allocatorProblem(), archProblem(), featureProblem()), registry.report().problems());
    assertEquals(List.of(
        entry(ALLOCATOR, "huge", "1.0", a, HugeAllocatorA.class, NOT_SELECTED,
            "duplicate allocator id 'huge' also at " + b + "; none selected"),
        entry(ALLOCATOR, "huge", "2.0", b, HugeAllocatorB.class, NOT_SELECTED,
            "duplicate allocator id 'huge' also at " + a + "; none selected"),
        entry(ARCH, "snp-model", "0.9", a, SnpModelArch.class, NOT_SELECTED,
            "duplicate arch id 'snp-model' also at " + b + "; none selected"),
        entry(ARCH, "snp-model", "0.9-fork", b, SnpModelArchFork.class, NOT_SELECTED,
            "duplicate arch id 'snp-model' also at " + a + "; none selected"),
        entry(FEATURE, "direct-map", "1.1", a, DirectMapFeature.class, NOT_SELECTED,
            "duplicate feature id 'direct-map' also at " + b + "; none selected"),
        entry(FEATURE, "direct-map", "1.1-fork", b, DirectMapFeatureFork.class, NOT_SELECTED,
            "duplicate feature id 'direct-map' also at " + a + "; none selected")),
        registry.report().plugins());
    assertEquals(List.of(), registry.allocators());
    assertEquals(Optional.empty(), registry.allocatorClaiming(HugeAllocatorA.FLAG));
    assertEquals(Optional.empty(), registry.archFor(VmType.SNP));
    assertEquals(List.of(), registry.features());
    assertEquals(0, registry.contributedFlags());
  }

  @Test
  void idAtPartOfTheLocationPicksOneAllocator() {
    PluginRegistry registry = registry(Map.of("gmem.allocator", "huge@b.jar"), a, b);

    assertEquals(List.of(
        entry(ALLOCATOR, "huge", "1.0", a, HugeAllocatorA.class, NOT_SELECTED,
            "duplicate allocator id 'huge': gmem.allocator=huge@b.jar chose " + b),
        entry(ALLOCATOR, "huge", "2.0", b, HugeAllocatorB.class, ACTIVE,
            "hugetlb pools present; default allocator (gmem.allocator)")),
        registry.report().ofKind(ALLOCATOR));
    assertEquals(HugeAllocatorB.class.getName(), registry.defaultAllocator().orElseThrow().getClass().getName());
    assertSame(registry.defaultAllocator().orElseThrow(), registry.allocatorClaiming(HugeAllocatorA.FLAG).orElseThrow());
    assertEquals(List.of("huge"), ids(registry.allocators()));
    assertEquals(List.of(archProblem(), featureProblem()), registry.report().problems());
    assertEquals(List.of(), registry.configErrors());
  }

  @Test
  void idAtPartOfTheLocationPicksOneArch() {
    PluginRegistry registry = registry(Map.of("gmem.arch.SNP", "snp-model@b.jar"), a, b);

    assertEquals(List.of(
        entry(ARCH, "snp-model", "0.9", a, SnpModelArch.class, NOT_SELECTED,
            "duplicate arch id 'snp-model': gmem.arch.SNP=snp-model@b.jar chose " + b),
        entry(ARCH, "snp-model", "0.9-fork", b, SnpModelArchFork.class, ACTIVE, "software model; serves SNP")),
        registry.report().ofKind(ARCH));
    assertEquals(SnpModelArchFork.class.getName(), registry.archFor(VmType.SNP).orElseThrow().getClass().getName());
  }

  @ParameterizedTest
  @ValueSource(strings = {"huge", "huge@.jar"})
  void aSelectionMatchingBothJarsLeavesTheDuplicateUnresolved(String value) {
    PluginRegistry registry = registry(Map.of("gmem.allocator", value), a, b);

    assertEquals(List.of(allocatorProblem(), archProblem(), featureProblem()), registry.report().problems());
    assertEquals(List.of("gmem.allocator=" + value + ": allocator 'huge' is at " + a + " and " + b
        + "; select one with -Dgmem.allocator=huge@<part of its location>"), registry.configErrors());
    assertEquals(List.of(NOT_SELECTED, NOT_SELECTED),
        registry.report().ofKind(ALLOCATOR).stream().map(p -> p.status()).toList());
    assertEquals(Optional.empty(), registry.defaultAllocator());
  }

  @Test
  void disabledDuplicateFeatureIsNoProblem() {
    PluginRegistry registry = registry(Map.of("gmem.feature.direct-map", "false"), a, b);

    assertEquals(List.of(
        entry(FEATURE, "direct-map", "1.1", a, DirectMapFeature.class, DISABLED,
            "disabled by gmem.feature.direct-map=false"),
        entry(FEATURE, "direct-map", "1.1-fork", b, DirectMapFeatureFork.class, DISABLED,
            "disabled by gmem.feature.direct-map=false")),
        registry.report().ofKind(FEATURE));
    assertEquals(List.of(allocatorProblem(), archProblem()), registry.report().problems());
  }

  private String allocatorProblem() {
    return "duplicate allocator id 'huge': " + a + " and " + b
        + "; select one with -Dgmem.allocator=huge@<part of its location>";
  }

  private String archProblem() {
    return "duplicate arch id 'snp-model': " + a + " and " + b
        + "; select one with -Dgmem.arch.SNP=snp-model@<part of its location>";
  }

  private String featureProblem() {
    return "duplicate feature id 'direct-map': " + a + " and " + b + "; remove all but one from the class path";
  }
}
