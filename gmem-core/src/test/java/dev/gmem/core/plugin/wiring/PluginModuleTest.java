package dev.gmem.core.plugin.wiring;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import dev.gmem.api.PluginDescriptor;
import dev.gmem.api.PluginDescriptor.Kind;
import dev.gmem.api.PluginDescriptor.Status;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.AllocatorProvider;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.core.config.GmemConfig;
import dev.gmem.core.plugin.PluginRegistry;
import dev.gmem.core.plugin.fixtures.BuiltinArch;
import dev.gmem.core.plugin.fixtures.PlainAllocator;
import dev.gmem.core.plugin.fixtures.SnpModelArch;
import dev.gmem.core.plugin.testing.ChildFirstLoader;
import dev.gmem.core.plugin.testing.PluginJar;
import dev.gmem.core.plugin.testing.TestHosts;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The Dagger wiring: ServiceLoader results reach the registry through the multibound sets. */
class PluginModuleTest {

  @TempDir Path dir;

  @Test
  void withNoPluginsTheSetsAreEmptyNotMissing() throws Exception {
    try (URLClassLoader nothing = new URLClassLoader(new URL[0], null)) {
      PluginRegistry registry = DaggerPluginComponent.factory()
          .create(new GmemConfig(Map.of(), nothing), TestHosts.ordinary()).registry();

      assertEquals(List.of(), registry.report().plugins());
      assertEquals(List.of(), registry.report().problems());
      assertEquals(Optional.empty(), registry.archFor(VmType.DEFAULT));
    }
  }

  @Test
  void serviceLoaderProvidersReachTheRegistryThroughTheConfiguredLoader() {
    Path jar = PluginJar.named("plugins.jar")
        .provider(AllocatorProvider.class, PlainAllocator.class)
        .provider(ArchProvider.class, SnpModelArch.class)
        .writeTo(dir);
    try (ChildFirstLoader loader = new ChildFirstLoader(getClass().getClassLoader(), jar)) {
      PluginComponent component = DaggerPluginComponent.factory()
          .create(new GmemConfig(Map.of("gmem.allocator", "plain"), loader), TestHosts.ordinary());
      PluginRegistry registry = component.registry();

      assertEquals(List.of(
          new PluginDescriptor(Kind.ALLOCATOR, "plain", "unversioned", jar.toString(), PlainAllocator.class.getName(),
              Status.ACTIVE, "no host requirements; default allocator (gmem.allocator)"),
          new PluginDescriptor(Kind.ARCH, "snp-model", "0.9", jar.toString(), SnpModelArch.class.getName(),
              Status.ACTIVE, "software model; serves SNP")),
          registry.report().plugins());
      assertEquals("plain", registry.defaultAllocator().orElseThrow().id());
      // One registry per component: providers are created and probed once per runtime.
      assertSame(registry, component.registry());
    }
  }

  @Test
  void otherModulesCanAddProvidersNextToServiceLoader() throws Exception {
    try (URLClassLoader nothing = new URLClassLoader(new URL[0], null)) {
      PluginRegistry registry = DaggerExtendedPluginComponent.factory()
          .create(new GmemConfig(Map.of(), nothing), TestHosts.ordinary()).registry();

      String testClasses = Path.of(BuiltinArch.class.getProtectionDomain().getCodeSource().getLocation().toURI())
          .toString();
      assertEquals(List.of(new PluginDescriptor(Kind.ARCH, "default", "0.1", testClasses, BuiltinArch.class.getName(),
          Status.ACTIVE, "built-in; serves DEFAULT, SW_PROTECTED")), registry.report().plugins());
      assertEquals("default", registry.archFor(VmType.SW_PROTECTED).orElseThrow().id());
    }
  }
}
