package dev.gmem.core.plugin;

import java.io.IOException;
import java.net.JarURLConnection;
import java.net.URISyntaxException;
import java.net.URL;
import java.net.URLConnection;
import java.nio.file.FileSystemNotFoundException;
import java.nio.file.Path;
import java.security.CodeSource;
import java.security.ProtectionDomain;

/** Renders where a class or resource came from as the jar or directory path users recognise. */
final class Locations {

  /** Shown when the JVM does not say (bootstrap classes, some custom loaders). */
  static final String UNKNOWN = "unknown location";

  private Locations() {}

  /** The jar or class directory that defined {@code type}. */
  static String of(Class<?> type) {
    ProtectionDomain domain = type.getProtectionDomain();
    CodeSource source = domain == null ? null : domain.getCodeSource();
    URL url = source == null ? null : source.getLocation();
    return url == null ? UNKNOWN : render(url);
  }

  /**
   * The jar or directory holding a resource found as {@code resourceName} (for example a
   * {@code META-INF/services} file), so a bad entry can be blamed on its jar.
   */
  static String ofResource(URL url, String resourceName) {
    if ("jar".equals(url.getProtocol())) {
      try {
        URLConnection connection = url.openConnection(); // does not open the jar
        if (connection instanceof JarURLConnection) {
          return render(((JarURLConnection) connection).getJarFileURL());
        }
      } catch (IOException e) {
        return url.toString();
      }
    }
    String rendered = render(url);
    String suffix = "/" + resourceName;
    String slashed = rendered.replace('\\', '/');
    return slashed.endsWith(suffix) ? rendered.substring(0, rendered.length() - suffix.length()) : rendered;
  }

  /** A {@code file:} URL as a platform path; anything else (nested jars, jrt:) as the URL itself. */
  static String render(URL url) {
    if ("file".equals(url.getProtocol())) {
      try {
        return Path.of(url.toURI()).toString();
      } catch (URISyntaxException | IllegalArgumentException | FileSystemNotFoundException e) {
        return url.toString();
      }
    }
    return url.toString();
  }
}
