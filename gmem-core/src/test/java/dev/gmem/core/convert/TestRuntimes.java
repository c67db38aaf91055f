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
    return withArch(backend, ZeroingArchProvider.class, ZeroingArchProvider.ID, dev.gmem.api.VmType.SW_PROTECTED);
  }

  /** SW_PROTECTED VMs whose accesses carry their own private bit (TDX/SNP-like mismatch exits). */
  public static GmemRuntime withAccessBitArch(String backend) {
    return withArch(backend, AccessBitArchProvider.class, AccessBitArchProvider.ID, dev.gmem.api.VmType.SW_PROTECTED);
  }

  /** A runtime on {@code backend} that discovers the feature {@code provider} besides what the class path has. */
  public static GmemRuntime withFeature(String backend, Class<? extends FeatureProvider> provider) {
    return builderWith(FeatureProvider.class, provider).property("gmem.backend", backend).build();
  }

  /** A runtime on {@code backend} whose discovery also sees {@code provider}, selected by {@code id} for {@code types}. */
  public static GmemRuntime withArch(String backend, Class<? extends ArchProvider> provider, String id, dev.gmem.api.VmType... types) {
    GmemRuntime.Builder builder = builderWith(ArchProvider.class, provider).property("gmem.backend", backend);
    for (dev.gmem.api.VmType type : types) {
      builder.property("gmem.arch." + type.name(), id);
    }
    return builder.build();
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
