package dev.gmem.core.plugin;

import dev.gmem.api.HostInfo;
import dev.gmem.api.PluginDescriptor;
import dev.gmem.api.PluginDescriptor.Kind;
import dev.gmem.api.PluginDescriptor.Status;
import dev.gmem.api.spi.AllocatorProvider;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.FeatureProvider;
import dev.gmem.api.spi.GmemProvider;
import dev.gmem.core.config.GmemConfig;
import dev.gmem.core.plugin.testing.ChildFirstLoader;
import dev.gmem.core.plugin.testing.PluginJar;
import dev.gmem.core.plugin.testing.TestHosts;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.io.TempDir;

/** Builds registries over jars written into a temporary directory. */
abstract class RegistryTestSupport {

  /** Where gmem-core's own classes are: arch providers from there are built-ins. */
  static final String CORE = Locations.of(PluginRegistry.class);

  @TempDir Path dir;

  private final List<ChildFirstLoader> loaders = new ArrayList<>();

  @AfterEach
  void closeLoaders() {
    loaders.forEach(ChildFirstLoader::close);
  }

  Path write(PluginJar jar) {
    return jar.writeTo(dir);
  }

  ClassLoader loader(Path... jars) {
    ChildFirstLoader loader = new ChildFirstLoader(getClass().getClassLoader(), jars);
    loaders.add(loader);
    return loader;
  }

  PluginRegistry registry(Map<String, String> properties, Path... jars) {
    return registry(properties, TestHosts.ordinary(), CORE, jars);
  }

  PluginRegistry registry(Map<String, String> properties, HostInfo host, String coreLocation, Path... jars) {
    ClassLoader loader = loader(jars);
    return new PluginRegistry(ServiceScan.scan(AllocatorProvider.class, loader),
        ServiceScan.scan(ArchProvider.class, loader), ServiceScan.scan(FeatureProvider.class, loader),
        new GmemConfig(properties, loader), host, coreLocation);
  }

  static PluginDescriptor entry(Kind kind, String id, String version, Path jar, Class<?> provider, Status status,
      String message) {
    return new PluginDescriptor(kind, id, version, jar.toString(), provider.getName(), status, message);
  }

  static List<String> ids(Collection<? extends GmemProvider> providers) {
    return providers.stream().map(GmemProvider::id).toList();
  }
}
