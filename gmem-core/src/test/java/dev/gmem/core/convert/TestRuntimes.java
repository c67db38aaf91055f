package dev.gmem.core.convert;

import dev.gmem.api.GmemRuntime;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.FeatureProvider;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** Runtimes whose plugin discovery sees extra test providers, without registering them for every test. */
public final class TestRuntimes {
  private TestRuntimes() {}

  public static GmemRuntime withZeroingArch(String backend) {
    return withArch(backend, ZeroingArchProvider.class, ZeroingArchProvider.ID, VmType.SW_PROTECTED);
  }

  /** SW_PROTECTED VMs whose accesses carry their own private bit (TDX/SNP-like mismatch exits). */
  public static GmemRuntime withAccessBitArch(String backend) {
    return withArch(backend, AccessBitArchProvider.class, AccessBitArchProvider.ID, dev.gmem.api.VmType.SW_PROTECTED);
  }

  /** A runtime on {@code backend} that discovers the feature {@code provider} besides what the class path has. */
  public static GmemRuntime withFeature(String backend, Class<? extends FeatureProvider> provider) {
    return withProviders(backend, Map.of(FeatureProvider.class, List.of(provider)), Map.of());
  }

  /** A runtime on {@code backend} whose discovery also sees {@code provider}, selected by {@code id} for {@code types}. */
  public static GmemRuntime withArch(String backend, Class<? extends ArchProvider> provider, String id, VmType... types) {
    Map<String, String> properties = new HashMap<>();
    for (VmType type : types) {
      properties.put("gmem.arch." + type.name(), id);
    }
    return withProviders(backend, Map.of(ArchProvider.class, List.of(provider)), properties);
  }

  /**
   * A runtime on {@code backend} whose discovery also finds {@code providers} (service interface →
   * implementations, listed in a {@code META-INF/services} directory of their own) and that is
   * configured with {@code properties}.
   */
  public static GmemRuntime withProviders(String backend, Map<Class<?>, List<Class<?>>> providers, Map<String, String> properties) {
    try {
      Path dir = Files.createTempDirectory("gmem-test-services");
      Path services = Files.createDirectories(dir.resolve("META-INF/services"));
      for (Map.Entry<Class<?>, List<Class<?>>> e : providers.entrySet()) {
        StringBuilder lines = new StringBuilder();
        e.getValue().forEach(c -> lines.append(c.getName()).append('\n'));
        Files.writeString(services.resolve(e.getKey().getName()), lines);
      }
      ClassLoader loader = new URLClassLoader(new URL[] {dir.toUri().toURL()}, TestRuntimes.class.getClassLoader());
      GmemRuntime.Builder b = GmemRuntime.builder().classLoader(loader).property("gmem.backend", backend);
      properties.forEach(b::property);
      return b.build();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
