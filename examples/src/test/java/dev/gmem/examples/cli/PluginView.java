package dev.gmem.examples.cli;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Enumeration;
import java.util.List;

/**
 * The test class path as plugin discovery sees it, with one jar's services hidden or one fixture
 * provider's added, so that a test can run the tool with and without a plugin.
 */
final class PluginView extends ClassLoader {
  private final List<String> hidden;
  private final String service;
  private final URL extra;

  private PluginView(ClassLoader parent, List<String> hidden, String service, URL extra) {
    super(parent);
    this.hidden = hidden;
    this.service = service;
    this.extra = extra;
  }

  /** Discovery without the services of class path entries whose location contains any of {@code parts}. */
  static PluginView without(String... parts) {
    return new PluginView(PluginView.class.getClassLoader(), List.of(parts), null, null);
  }

  /** Discovery with {@code provider} declared as a provider of {@code spi}, in {@code dir}. */
  static PluginView with(Class<?> spi, Class<?> provider, Path dir, String... hiddenParts) {
    try {
      Path file = Files.writeString(dir.resolve(spi.getName()), provider.getName() + "\n");
      return new PluginView(PluginView.class.getClassLoader(), List.of(hiddenParts), "META-INF/services/" + spi.getName(),
          file.toUri().toURL());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  @Override
  public Enumeration<URL> getResources(String name) throws IOException {
    List<URL> urls = new ArrayList<>();
    for (URL url : Collections.list(getParent().getResources(name))) {
      if (hidden.stream().noneMatch(url.toString()::contains)) {
        urls.add(url);
      }
    }
    if (name.equals(service)) {
      urls.add(extra);
    }
    return Collections.enumeration(urls);
  }
}
