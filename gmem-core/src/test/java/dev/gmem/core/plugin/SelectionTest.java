package dev.gmem.core.plugin;

import static dev.gmem.api.PluginDescriptor.Kind.ALLOCATOR;
import static dev.gmem.api.PluginDescriptor.Kind.ARCH;
import static dev.gmem.api.PluginDescriptor.Kind.FEATURE;
import static dev.gmem.api.PluginDescriptor.Status.ACTIVE;
import static dev.gmem.api.PluginDescriptor.Status.BROKEN;
import static dev.gmem.api.PluginDescriptor.Status.DISABLED;
import static dev.gmem.api.PluginDescriptor.Status.NOT_SELECTED;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.gmem.api.DiscoveryReport;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.AllocatorProvider;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.FeatureProvider;
import dev.gmem.api.spi.GmemProvider;
import dev.gmem.core.config.GmemConfig;
import dev.gmem.core.plugin.fixtures.BuiltinArch;
import dev.gmem.core.plugin.fixtures.DirectMapFeature;
import dev.gmem.core.plugin.fixtures.GigAllocator;
import dev.gmem.core.plugin.fixtures.HugeAllocatorA;
import dev.gmem.core.plugin.fixtures.PlainAllocator;
import dev.gmem.core.plugin.fixtures.ProbeThrowsAllocator;
import dev.gmem.core.plugin.fixtures.ProbeThrowsFeature;
import dev.gmem.core.plugin.fixtures.SnpModelArch;
import dev.gmem.core.plugin.fixtures.SnpVendorArch;
import dev.gmem.core.plugin.fixtures.SwVendorArch;
import dev.gmem.core.plugin.fixtures.UserfaultFeature;
import dev.gmem.core.plugin.testing.PluginJar;
import dev.gmem.core.plugin.testing.TestHosts;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Selection properties, the arch rules, feature switches and the queries the runtime uses. */
class SelectionTest extends RegistryTestSupport {

  @Test
  void archPropertyOverridesDiscovery() {
    Path jar = write(PluginJar.named("snp.jar")
        .provider(ArchProvider.class, SnpModelArch.class)
        .provider(ArchProvider.class, SnpVendorArch.class));

    PluginRegistry registry = registry(Map.of("gmem.arch.SNP", "snp-vendor"), jar);

    assertEquals("snp-vendor", registry.archFor(VmType.SNP).orElseThrow().id());
    assertEquals(List.of(
        entry(ARCH, "snp-model", "0.9", jar, SnpModelArch.class, NOT_SELECTED, "SNP uses 'snp-vendor' (gmem.arch.SNP)"),
        entry(ARCH, "snp-vendor", "2.1", jar, SnpVendorArch.class, ACTIVE, "SEV-SNP firmware found; serves SNP")),
        registry.report().plugins());
    assertEquals(List.of(), registry.report().problems());
    assertEquals(List.of(), registry.configErrors());
  }

  @Test
  void severalExternalArchesForOneTypePickTheSmallestIdWithAWarning() {
    Path vendor = write(PluginJar.named("vendor.jar").provider(ArchProvider.class, SnpVendorArch.class));
    Path model = write(PluginJar.named("model.jar").provider(ArchProvider.class, SnpModelArch.class));

    PluginRegistry registry = registry(Map.of(), vendor, model);

    assertEquals("snp-model", registry.archFor(VmType.SNP).orElseThrow().id());
    assertEquals(List.of("several arch providers serve SNP: 'snp-model' (" + model + ") and 'snp-vendor' (" + vendor
        + "); using 'snp-model'; choose one with -Dgmem.arch.SNP=<id>"), registry.report().problems());
    assertEquals(List.of(
        entry(ARCH, "snp-model", "0.9", model, SnpModelArch.class, ACTIVE, "software model; serves SNP"),
        entry(ARCH, "snp-vendor", "2.1", vendor, SnpVendorArch.class, NOT_SELECTED, "SNP uses 'snp-model'")),
        registry.report().plugins());
  }

  @Test
  void anArchFromOutsideCoresJarBeatsTheBuiltIn() {
    Path core = write(PluginJar.named("core.jar").provider(ArchProvider.class, BuiltinArch.class));
    Path vendor = write(PluginJar.named("vendor.jar").provider(ArchProvider.class, SwVendorArch.class));

    PluginRegistry registry = registry(Map.of(), TestHosts.ordinary(), core.toString(), core, vendor);

    assertEquals("sw-vendor", registry.archFor(VmType.SW_PROTECTED).orElseThrow().id());
    assertEquals("default", registry.archFor(VmType.DEFAULT).orElseThrow().id());
    assertEquals(List.of(
        entry(ARCH, "default", "0.1", core, BuiltinArch.class, ACTIVE,
            "built-in; serves DEFAULT; SW_PROTECTED uses 'sw-vendor'"),
        entry(ARCH, "sw-vendor", "5.0", vendor, SwVendorArch.class, ACTIVE, "vendor model; serves SW_PROTECTED")),
        registry.report().plugins());
    assertEquals(List.of(), registry.report().problems());
  }

  @Test
  void withoutABuiltInAmongThemTheSmallestIdWins() {
    // Same jars, but neither is gmem-core's: both count as external.
    Path core = write(PluginJar.named("core.jar").provider(ArchProvider.class, BuiltinArch.class));
    Path vendor = write(PluginJar.named("vendor.jar").provider(ArchProvider.class, SwVendorArch.class));

    PluginRegistry registry = registry(Map.of(), core, vendor);

    assertEquals("default", registry.archFor(VmType.SW_PROTECTED).orElseThrow().id());
    assertEquals(List.of("several arch providers serve SW_PROTECTED: 'default' (" + core + ") and 'sw-vendor' ("
        + vendor + "); using 'default'; choose one with -Dgmem.arch.SW_PROTECTED=<id>"), registry.report().problems());
  }

  @ParameterizedTest
  @ValueSource(strings = {"gmem.arch.SW_PROTECTED", "gmem.arch.sw_protected"})
  void archPropertyCanPreferTheBuiltIn(String key) {
    Path core = write(PluginJar.named("core.jar").provider(ArchProvider.class, BuiltinArch.class));
    Path vendor = write(PluginJar.named("vendor.jar").provider(ArchProvider.class, SwVendorArch.class));

    PluginRegistry registry = registry(Map.of(key, "default"), TestHosts.ordinary(), core.toString(), core, vendor);

    assertEquals("default", registry.archFor(VmType.SW_PROTECTED).orElseThrow().id());
    assertEquals(List.of(
        entry(ARCH, "default", "0.1", core, BuiltinArch.class, ACTIVE, "built-in; serves DEFAULT, SW_PROTECTED"),
        entry(ARCH, "sw-vendor", "5.0", vendor, SwVendorArch.class, NOT_SELECTED,
            "SW_PROTECTED uses 'default' (" + key + ")")),
        registry.report().plugins());
    assertEquals(List.of(), registry.report().problems());
  }

  @Test
  void allocatorPropertyNamesTheDefaultAndLeavesTheOthersActive() {
    Path jar = write(PluginJar.named("alloc.jar")
        .provider(AllocatorProvider.class, HugeAllocatorA.class)
        .provider(AllocatorProvider.class, PlainAllocator.class));

    PluginRegistry chosen = registry(Map.of("gmem.allocator", "plain"), jar);
    PluginRegistry unchosen = registry(Map.of(), jar);

    assertEquals("plain", chosen.defaultAllocator().orElseThrow().id());
    assertEquals(List.of("huge", "plain"), ids(chosen.allocators()));
    assertEquals(List.of(
        entry(ALLOCATOR, "huge", "1.0", jar, HugeAllocatorA.class, ACTIVE, "hugetlb pools present"),
        entry(ALLOCATOR, "plain", "unversioned", jar, PlainAllocator.class, ACTIVE,
            "no host requirements; default allocator (gmem.allocator)")),
        chosen.report().plugins());
    assertEquals(Optional.empty(), unchosen.defaultAllocator());
    assertEquals(List.of("huge", "plain"), ids(unchosen.allocators()));
  }

  @Test
  void propertiesNamingNothingAreConfigErrorsListingWhatExists() {
    Path jar = write(PluginJar.named("plugins.jar")
        .provider(AllocatorProvider.class, HugeAllocatorA.class)
        .provider(ArchProvider.class, SnpModelArch.class)
        .provider(FeatureProvider.class, DirectMapFeature.class));

    PluginRegistry registry = registry(Map.of(
        "gmem.allocator", "nope",
        "gmem.arch.SNP", "nope",
        "gmem.arch.TDX", "snp-model",
        "gmem.arch.FOO", "x",
        "gmem.feature.nope", "false",
        "gmem.feature.direct-map", "maybe"), jar);

    assertEquals(List.of(
        "gmem.allocator=nope names no allocator; available: huge",
        "gmem.arch.FOO=x: unknown VM type 'FOO'; known: DEFAULT, SW_PROTECTED, SNP, TDX, PKVM",
        "gmem.arch.SNP=nope names no arch; available: snp-model",
        "gmem.arch.TDX=snp-model: arch 'snp-model' does not serve TDX; available: none",
        "gmem.feature.direct-map=maybe must be true or false",
        "gmem.feature.nope=false names no feature; available: direct-map"),
        registry.configErrors());
    // Configuration errors fail runtime creation; the report keeps class-path problems only.
    assertEquals(List.of(), registry.report().problems());
  }

  @Test
  void aFeatureSwitchedOnThatIsNotThereIsAnError() {
    Path jar = write(PluginJar.named("features.jar").provider(FeatureProvider.class, UserfaultFeature.class));

    assertEquals(List.of("gmem.feature.usrefault=true names no feature; available: userfault"),
        registry(Map.of("gmem.feature.usrefault", "true"), jar).configErrors());
  }

  @Test
  void twoSpellingsOfOneVmTypeMustAgree() {
    Path jar = write(PluginJar.named("snp.jar")
        .provider(ArchProvider.class, SnpModelArch.class)
        .provider(ArchProvider.class, SnpVendorArch.class));

    PluginRegistry agree = registry(Map.of("gmem.arch.SNP", "snp-vendor", "gmem.arch.snp", " snp-vendor"), jar);
    PluginRegistry disagree = registry(Map.of("gmem.arch.SNP", "snp-vendor", "gmem.arch.snp", "snp-model"), jar);

    assertEquals(List.of(), agree.configErrors());
    assertEquals(List.of("gmem.arch.snp=snp-model contradicts gmem.arch.SNP=snp-vendor (VM type names ignore case)"),
        disagree.configErrors());
  }

  @Test
  void propertyNamingAnUnusableProviderSaysWhy() {
    Path jar = write(PluginJar.named("alloc.jar")
        .provider(AllocatorProvider.class, HugeAllocatorA.class)
        .provider(AllocatorProvider.class, GigAllocator.class)
        .provider(AllocatorProvider.class, ProbeThrowsAllocator.class));

    assertEquals(List.of("gmem.allocator=gig: allocator 'gig' is UNSUPPORTED (no 1 GiB hugetlb pool); "
            + "available: huge"),
        registry(Map.of("gmem.allocator", "gig"), jar).configErrors());
    assertEquals(List.of("gmem.allocator=probe-throws: allocator 'probe-throws' is BROKEN (probe failed: "
            + "java.lang.IllegalStateException: probe exploded); available: huge"),
        registry(Map.of("gmem.allocator", "probe-throws"), jar).configErrors());
    assertEquals(List.of("gmem.allocator=huge@elsewhere: allocator 'huge' is at " + jar
            + ", not at a location containing 'elsewhere'; available: huge"),
        registry(Map.of("gmem.allocator", "huge@elsewhere"), jar).configErrors());
  }

  @Test
  void switchedOffFeaturesAreDisabledAndNotProbed() {
    Path jar = write(PluginJar.named("features.jar")
        .provider(FeatureProvider.class, DirectMapFeature.class)
        .provider(FeatureProvider.class, UserfaultFeature.class)
        .provider(FeatureProvider.class, ProbeThrowsFeature.class));

    PluginRegistry off = registry(Map.of("gmem.feature.direct-map", "false", "gmem.feature.explodes", "FALSE"), jar);
    PluginRegistry on = registry(Map.of("gmem.feature.direct-map", "true"), jar);

    assertEquals(List.of(
        entry(FEATURE, "direct-map", "1.1", jar, DirectMapFeature.class, DISABLED,
            "disabled by gmem.feature.direct-map=false"),
        entry(FEATURE, "explodes", "0.0", jar, ProbeThrowsFeature.class, DISABLED,
            "disabled by gmem.feature.explodes=FALSE"),
        entry(FEATURE, "userfault", "0.3", jar, UserfaultFeature.class, ACTIVE, "userfaultfd works")),
        off.report().plugins());
    assertEquals(List.of(), off.report().problems());
    assertEquals(List.of(), off.configErrors());
    assertEquals(List.of("userfault"), ids(off.features()));
    assertEquals(UserfaultFeature.FLAG, off.contributedFlags());
    assertEquals(List.of(
        entry(FEATURE, "direct-map", "1.1", jar, DirectMapFeature.class, ACTIVE, "memfd_secret works"),
        entry(FEATURE, "explodes", "0.0", jar, ProbeThrowsFeature.class, BROKEN,
            "probe failed: java.lang.IllegalStateException: probe exploded"),
        entry(FEATURE, "userfault", "0.3", jar, UserfaultFeature.class, ACTIVE, "userfaultfd works")),
        on.report().plugins());
    assertEquals(List.of("direct-map", "userfault"), ids(on.features()));
  }

  @Test
  void contributedFlagsAreTheUnionOfActiveAllocatorsAndFeatures() {
    Path jar = write(PluginJar.named("plugins.jar")
        .provider(AllocatorProvider.class, HugeAllocatorA.class)
        .provider(AllocatorProvider.class, GigAllocator.class)
        .provider(AllocatorProvider.class, PlainAllocator.class)
        .provider(AllocatorProvider.class, ProbeThrowsAllocator.class)
        .provider(FeatureProvider.class, DirectMapFeature.class)
        .provider(FeatureProvider.class, UserfaultFeature.class));

    PluginRegistry ordinary = registry(Map.of(), TestHosts.ordinary(), CORE, jar);
    PluginRegistry gig = registry(Map.of(), TestHosts.withGigPages(), CORE, jar);
    PluginRegistry noDirectMap = registry(Map.of("gmem.feature.direct-map", "false"), jar);

    long base = HugeAllocatorA.FLAG | DirectMapFeature.FLAG | UserfaultFeature.FLAG;
    assertEquals(base, ordinary.contributedFlags());
    assertEquals(base | GigAllocator.FLAG, gig.contributedFlags());
    assertEquals(HugeAllocatorA.FLAG | UserfaultFeature.FLAG, noDirectMap.contributedFlags());
  }

  @Test
  void allocatorClaimingAsksTheActiveAllocatorsInIdOrder() {
    Path jar = write(PluginJar.named("alloc.jar")
        .provider(AllocatorProvider.class, HugeAllocatorA.class)
        .provider(AllocatorProvider.class, GigAllocator.class)
        .provider(AllocatorProvider.class, PlainAllocator.class));

    PluginRegistry ordinary = registry(Map.of(), TestHosts.ordinary(), CORE, jar);
    PluginRegistry gig = registry(Map.of(), TestHosts.withGigPages(), CORE, jar);

    assertEquals(Optional.of("huge"), ordinary.allocatorClaiming(HugeAllocatorA.FLAG).map(GmemProvider::id));
    assertEquals(Optional.empty(), ordinary.allocatorClaiming(GigAllocator.FLAG));
    assertEquals(Optional.empty(), ordinary.allocatorClaiming(0));
    assertEquals(Optional.of("gig"), gig.allocatorClaiming(GigAllocator.FLAG).map(GmemProvider::id));
    assertEquals(Optional.of("gig"),
        gig.allocatorClaiming(GigAllocator.FLAG | HugeAllocatorA.FLAG).map(GmemProvider::id));
  }

  @Test
  void reportIsSortedByKindThenIdWhateverTheDiscoveryOrder() {
    Path jar = write(PluginJar.named("plugins.jar")
        .provider(FeatureProvider.class, UserfaultFeature.class)
        .provider(ArchProvider.class, SnpVendorArch.class)
        .provider(AllocatorProvider.class, PlainAllocator.class)
        .provider(FeatureProvider.class, DirectMapFeature.class)
        .provider(ArchProvider.class, BuiltinArch.class)
        .provider(AllocatorProvider.class, HugeAllocatorA.class));
    ClassLoader loader = loader(jar);
    GmemConfig config = new GmemConfig(Map.of(), loader);

    DiscoveryReport forward = new PluginRegistry(ServiceScan.scan(AllocatorProvider.class, loader),
        ServiceScan.scan(ArchProvider.class, loader), ServiceScan.scan(FeatureProvider.class, loader), config,
        TestHosts.ordinary(), CORE).report();
    DiscoveryReport backward = new PluginRegistry(reversed(ServiceScan.scan(AllocatorProvider.class, loader)),
        reversed(ServiceScan.scan(ArchProvider.class, loader)), reversed(ServiceScan.scan(FeatureProvider.class, loader)),
        config, TestHosts.ordinary(), CORE).report();

    assertEquals(List.of("ALLOCATOR huge", "ALLOCATOR plain", "ARCH default", "ARCH snp-vendor",
        "FEATURE direct-map", "FEATURE userfault"),
        forward.plugins().stream().map(p -> p.kind() + " " + p.id()).toList());
    assertEquals(forward, backward);
  }

  private static <T> Set<T> reversed(Set<T> set) {
    List<T> items = new ArrayList<>(set);
    Collections.reverse(items);
    return new LinkedHashSet<>(items);
  }
}
