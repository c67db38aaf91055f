package dev.gmem.core.convert;

import dev.gmem.api.GmemRuntime;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.FeatureProvider;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;

/** Runtimes whose plugin discovery sees extra test providers, without registering them for every test. */
public final class TestRuntimes {
  private TestRuntimes() {}

  public static GmemRuntime withZeroingArch(String backend) {
    return builderWith(ArchProvider.class, ZeroingArchProvider.class)
        .property("gmem.backend", backend)
        .property("gmem.arch.SW_PROTECTED", ZeroingArchProvider.ID)
        .build();
  }

  /** A runtime on {@code backend} that discovers the feature {@code provider} besides what the class path has. */
  public static GmemRuntime withFeature(String backend, Class<? extends FeatureProvider> provider) {
    return builderWith(FeatureProvider.class, provider).property("gmem.backend", backend).build();
  }

  /** A builder whose class loader lists {@code provider} as a {@code service} in META-INF/services. */
  private static GmemRuntime.Builder builderWith(Class<?> service, Class<?> provider) {
    try {
      Path dir = Files.createTempDirectory("gmem-test-services");
      Path services = Files.createDirectories(dir.resolve("META-INF/services"));
      Files.writeString(services.resolve(service.getName()), provider.getName() + "\n");
      ClassLoader loader = new URLClassLoader(new URL[] {dir.toUri().toURL()}, TestRuntimes.class.getClassLoader());
      return GmemRuntime.builder().classLoader(loader);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
