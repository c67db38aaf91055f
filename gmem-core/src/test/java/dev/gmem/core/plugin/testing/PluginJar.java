package dev.gmem.core.plugin.testing;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;

/**
 * A plugin jar written at test time: fixture classes copied from the test class path plus the
 * {@code META-INF/services} entries that declare them. Each jar carries its own copy, so that a
 * {@link ChildFirstLoader} reports the jar as the provider's location.
 */
public final class PluginJar {

  private final String name;
  private final List<Class<?>> classes = new ArrayList<>();
  private final Map<String, List<String>> services = new LinkedHashMap<>();
  private String implementationVersion;

  private PluginJar(String name) {
    this.name = name;
  }

  public static PluginJar named(String name) {
    return new PluginJar(name);
  }

  /** Copies {@code provider} into the jar and declares it as a provider of {@code spi}. */
  public PluginJar provider(Class<?> spi, Class<?> provider) {
    classes.add(provider);
    return declare(spi, provider.getName());
  }

  /** Declares {@code className} as a provider of {@code spi} without copying any class. */
  public PluginJar declare(Class<?> spi, String className) {
    services.computeIfAbsent(spi.getName(), k -> new ArrayList<>()).add(className);
    return this;
  }

  /** Sets the manifest's {@code Implementation-Version}. */
  public PluginJar implementationVersion(String version) {
    this.implementationVersion = version;
    return this;
  }

  public Path writeTo(Path dir) {
    Path jar = dir.resolve(name);
    Manifest manifest = new Manifest();
    manifest.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
    if (implementationVersion != null) {
      manifest.getMainAttributes().put(Attributes.Name.IMPLEMENTATION_VERSION, implementationVersion);
    }
    try (OutputStream file = Files.newOutputStream(jar);
        JarOutputStream out = new JarOutputStream(file, manifest)) {
      for (Class<?> type : classes) {
        String entry = type.getName().replace('.', '/') + ".class";
        out.putNextEntry(new JarEntry(entry));
        try (InputStream in = type.getClassLoader().getResourceAsStream(entry)) {
          if (in == null) {
            throw new IllegalStateException("no class file for " + type.getName());
          }
          in.transferTo(out);
        }
        out.closeEntry();
      }
      for (Map.Entry<String, List<String>> service : services.entrySet()) {
        out.putNextEntry(new JarEntry("META-INF/services/" + service.getKey()));
        String lines = "# written by PluginJar\n" + String.join("\n", service.getValue()) + "\n";
        out.write(lines.getBytes(StandardCharsets.UTF_8));
        out.closeEntry();
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return jar;
  }
}
