package dev.gmem.core.plugin;

import static dev.gmem.api.PluginDescriptor.Kind.ALLOCATOR;
import static dev.gmem.api.PluginDescriptor.Kind.ARCH;
import static dev.gmem.api.PluginDescriptor.Kind.FEATURE;
import static dev.gmem.api.PluginDescriptor.Status.ACTIVE;
import static dev.gmem.api.PluginDescriptor.Status.BROKEN;
import static dev.gmem.api.PluginDescriptor.Status.UNSUPPORTED;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import dev.gmem.api.PluginDescriptor;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.AllocatorProvider;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.FeatureProvider;
import dev.gmem.core.plugin.fixtures.AbstractFixtureAllocator;
import dev.gmem.core.plugin.fixtures.BadIdAllocator;
import dev.gmem.core.plugin.fixtures.DirectMapFeature;
import dev.gmem.core.plugin.fixtures.GigAllocator;
import dev.gmem.core.plugin.fixtures.HugeAllocatorA;
import dev.gmem.core.plugin.fixtures.OrphanAllocator;
import dev.gmem.core.plugin.fixtures.PlainAllocator;
import dev.gmem.core.plugin.fixtures.ProbeThrowsAllocator;
import dev.gmem.core.plugin.fixtures.SnpModelArch;
import dev.gmem.core.plugin.fixtures.ThrowingAllocator;
import dev.gmem.core.plugin.testing.PluginJar;
import dev.gmem.core.plugin.testing.TestHosts;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.ServiceLoader;
import org.junit.jupiter.api.Test;

/** What discovery finds and reports, including providers that fail in every way a plugin can. */
class DiscoveryTest extends RegistryTestSupport {

  private static final String MISSING = "dev.gmem.core.plugin.fixtures.Missing";

  @Test
  void discoveredProvidersAreActiveAndReportIdVersionLocationAndClass() {
    Path jar = write(PluginJar.named("plugins.jar")
        .provider(AllocatorProvider.class, HugeAllocatorA.class)
        .provider(ArchProvider.class, SnpModelArch.class)
        .provider(FeatureProvider.class, DirectMapFeature.class));

    PluginRegistry registry = registry(Map.of(), jar);

    assertEquals(List.of(
        entry(ALLOCATOR, "huge", "1.0", jar, HugeAllocatorA.class, ACTIVE, "hugetlb pools present"),
        entry(ARCH, "snp-model", "0.9", jar, SnpModelArch.class, ACTIVE, "software model; serves SNP"),
        entry(FEATURE, "direct-map", "1.1", jar, DirectMapFeature.class, ACTIVE, "memfd_secret works")),
        registry.report().plugins());
    assertEquals(List.of(), registry.report().problems());
    assertEquals(List.of("huge"), ids(registry.allocators()));
    assertEquals("snp-model", registry.archFor(VmType.SNP).orElseThrow().id());
    assertEquals(Optional.empty(), registry.archFor(VmType.TDX));
    assertEquals(List.of("direct-map"), ids(registry.features()));
  }

  @Test
  void providersComeFromTheGeneratedJarNotTheTestClassPath() {
    Path jar = write(PluginJar.named("plugins.jar").provider(ArchProvider.class, SnpModelArch.class));
    ClassLoader loader = loader(jar);

    Discovered<ArchProvider> found = ServiceScan.scan(ArchProvider.class, loader).iterator().next();

    Discovered.Loaded<ArchProvider> loaded = (Discovered.Loaded<ArchProvider>) found;
    assertSame(loader, loaded.provider().getClass().getClassLoader());
    assertEquals(jar.toString(), loaded.location());
  }

  @Test
  void versionDefaultsToTheJarManifest() {
    Path versioned = write(PluginJar.named("versioned.jar")
        .provider(AllocatorProvider.class, PlainAllocator.class).implementationVersion("3.1.4"));
    Path plain = write(PluginJar.named("plain.jar").provider(AllocatorProvider.class, PlainAllocator.class));

    assertEquals(List.of(entry(ALLOCATOR, "plain", "3.1.4", versioned, PlainAllocator.class, ACTIVE,
        "no host requirements")), registry(Map.of(), versioned).report().plugins());
    assertEquals(List.of(entry(ALLOCATOR, "plain", "unversioned", plain, PlainAllocator.class, ACTIVE,
        "no host requirements")), registry(Map.of(), plain).report().plugins());
  }

  @Test
  void constructorThatThrowsIsBrokenAndSkipped() {
    Path jar = write(PluginJar.named("plugins.jar")
        .provider(AllocatorProvider.class, ThrowingAllocator.class)
        .provider(AllocatorProvider.class, PlainAllocator.class));

    PluginRegistry registry = registry(Map.of(), jar);

    assertEquals(List.of(
        entry(ALLOCATOR, "dev.gmem.core.plugin.fixtures.ThrowingAllocator", "unknown", jar, ThrowingAllocator.class,
            BROKEN, "dev.gmem.api.spi.AllocatorProvider: Provider dev.gmem.core.plugin.fixtures.ThrowingAllocator"
                + " could not be instantiated: java.lang.IllegalStateException: no hardware"),
        entry(ALLOCATOR, "plain", "unversioned", jar, PlainAllocator.class, ACTIVE, "no host requirements")),
        registry.report().plugins());
    assertEquals(List.of(), registry.report().problems());
    assertEquals(List.of("plain"), ids(registry.allocators()));
  }

  @Test
  void servicesEntryNamingAMissingClassIsBlamedOnTheJarDeclaringIt() {
    Path good = write(PluginJar.named("good.jar").provider(AllocatorProvider.class, PlainAllocator.class));
    Path bad = write(PluginJar.named("bad.jar").declare(AllocatorProvider.class, MISSING));

    PluginRegistry registry = registry(Map.of(), good, bad);

    assertEquals(List.of(
        new PluginDescriptor(ALLOCATOR, MISSING, "unknown", bad.toString(), MISSING, BROKEN,
            "dev.gmem.api.spi.AllocatorProvider: Provider " + MISSING + " not found"),
        entry(ALLOCATOR, "plain", "unversioned", good, PlainAllocator.class, ACTIVE, "no host requirements")),
        registry.report().plugins());
    assertEquals(List.of("plain"), ids(registry.allocators()));
  }

  @Test
  void providerThatCannotBeLinkedIsBlamedOnItsServicesEntry() {
    // The error names the missing superclass, not the provider: the entry is found by elimination.
    Path jar = write(PluginJar.named("orphan.jar")
        .provider(AllocatorProvider.class, OrphanAllocator.class)
        .provider(AllocatorProvider.class, PlainAllocator.class));

    PluginRegistry registry = registry(Map.of(), jar);

    String base = AbstractFixtureAllocator.class.getName().replace('.', '/');
    assertEquals(List.of(
        entry(ALLOCATOR, OrphanAllocator.class.getName(), "unknown", jar, OrphanAllocator.class, BROKEN,
            "java.lang.NoClassDefFoundError: " + base),
        entry(ALLOCATOR, "plain", "unversioned", jar, PlainAllocator.class, ACTIVE, "no host requirements")),
        registry.report().plugins());
  }

  @Test
  void probeThatThrowsIsBrokenAndSkipped() {
    Path jar = write(PluginJar.named("plugins.jar")
        .provider(AllocatorProvider.class, ProbeThrowsAllocator.class)
        .provider(AllocatorProvider.class, HugeAllocatorA.class));

    PluginRegistry registry = registry(Map.of(), jar);

    assertEquals(List.of(
        entry(ALLOCATOR, "huge", "1.0", jar, HugeAllocatorA.class, ACTIVE, "hugetlb pools present"),
        entry(ALLOCATOR, "probe-throws", "1.0", jar, ProbeThrowsAllocator.class, BROKEN,
            "probe failed: java.lang.IllegalStateException: probe exploded")),
        registry.report().plugins());
    assertEquals(List.of("huge"), ids(registry.allocators()));
    assertEquals(HugeAllocatorA.FLAG, registry.contributedFlags());
  }

  @Test
  void idThatThrowsIsBrokenUnderItsClassName() {
    Path jar = write(PluginJar.named("plugins.jar").provider(AllocatorProvider.class, BadIdAllocator.class));

    PluginRegistry registry = registry(Map.of(), jar);

    assertEquals(List.of(entry(ALLOCATOR, BadIdAllocator.class.getName(), "unknown", jar, BadIdAllocator.class,
        BROKEN, "id() failed: java.lang.UnsupportedOperationException: no id")), registry.report().plugins());
    assertEquals(List.of(), registry.allocators());
  }

  @Test
  void unsupportedProviderReportsTheProbeReasonAndIsNotUsed() {
    Path jar = write(PluginJar.named("gig.jar").provider(AllocatorProvider.class, GigAllocator.class));

    PluginRegistry without = registry(Map.of(), TestHosts.ordinary(), CORE, jar);
    PluginRegistry with = registry(Map.of(), TestHosts.withGigPages(), CORE, jar);

    assertEquals(List.of(entry(ALLOCATOR, "gig", "1.0", jar, GigAllocator.class, UNSUPPORTED,
        "no 1 GiB hugetlb pool")), without.report().plugins());
    assertEquals(List.of(), without.allocators());
    assertEquals(Optional.empty(), without.allocatorClaiming(GigAllocator.FLAG));
    assertEquals(0, without.contributedFlags());
    assertEquals(List.of(entry(ALLOCATOR, "gig", "1.0", jar, GigAllocator.class, ACTIVE,
        "1 GiB hugetlb pool present")), with.report().plugins());
    assertEquals(GigAllocator.FLAG, with.contributedFlags());
  }

  @Test
  void nothingDiscoveredGivesAnEmptyRegistry() {
    PluginRegistry registry = registry(Map.of());

    assertEquals(List.of(), registry.report().plugins());
    assertEquals(List.of(), registry.report().problems());
    assertEquals(List.of(), registry.allocators());
    assertEquals(List.of(), registry.features());
    assertEquals(Optional.empty(), registry.archFor(VmType.DEFAULT));
    assertEquals(Optional.empty(), registry.defaultAllocator());
    assertEquals(0, registry.contributedFlags());
  }

  @Test
  void theTestClassPathRegistersNoFixture() {
    // Other gmem-core tests build real runtimes; fixtures must reach only the loaders tests build.
    ClassLoader testLoader = getClass().getClassLoader();
    for (Class<?> spi : List.of(AllocatorProvider.class, ArchProvider.class, FeatureProvider.class)) {
      List<String> fixtures = ServiceLoader.load(spi, testLoader).stream()
          .map(p -> p.type().getName())
          .filter(name -> name.startsWith("dev.gmem.core.plugin.fixtures."))
          .toList();
      assertEquals(List.of(), fixtures, spi.getName());
    }
  }
}
