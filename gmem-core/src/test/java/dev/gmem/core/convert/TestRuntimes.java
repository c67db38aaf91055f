package dev.gmem.core.convert;

import dev.gmem.api.GmemRuntime;
import dev.gmem.api.spi.ArchProvider;
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
    return withSwProtectedArch(backend, ZeroingArchProvider.class, ZeroingArchProvider.ID);
  }

  /** SW_PROTECTED VMs whose accesses carry their own private bit (TDX/SNP-like mismatch exits). */
  public static GmemRuntime withAccessBitArch(String backend) {
    return withSwProtectedArch(backend, AccessBitArchProvider.class, AccessBitArchProvider.ID);
  }

  private static GmemRuntime withSwProtectedArch(String backend, Class<? extends ArchProvider> provider, String id) {
    try {
      Path dir = Files.createTempDirectory("gmem-test-services");
      Path services = Files.createDirectories(dir.resolve("META-INF/services"));
      Files.writeString(services.resolve(ArchProvider.class.getName()), provider.getName() + "\n");
      ClassLoader loader = new URLClassLoader(new URL[] {dir.toUri().toURL()}, TestRuntimes.class.getClassLoader());
      return GmemRuntime.builder()
          .classLoader(loader)
          .property("gmem.backend", backend)
          .property("gmem.arch.SW_PROTECTED", id)
          .build();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
