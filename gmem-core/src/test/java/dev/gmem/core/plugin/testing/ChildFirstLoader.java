package dev.gmem.core.plugin.testing;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.MalformedURLException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Path;
import java.util.Enumeration;

/**
 * Loads fixture classes only from its own jars (the parent also has them, on the test class
 * path) and shows only its own {@code META-INF/services} files, so a test sees exactly the
 * plugins it built, whatever else gmem-core registers. Everything else, notably the SPI types,
 * comes from the parent, so the providers implement the interfaces the registry knows.
 */
public final class ChildFirstLoader extends URLClassLoader {

  static {
    registerAsParallelCapable();
  }

  private static final String FIXTURES = "dev.gmem.core.plugin.fixtures.";
  private static final String SERVICES = "META-INF/services/";

  public ChildFirstLoader(ClassLoader parent, Path... jars) {
    super("plugin-test", urls(jars), parent);
  }

  private static URL[] urls(Path... jars) {
    URL[] urls = new URL[jars.length];
    for (int i = 0; i < jars.length; i++) {
      try {
        urls[i] = jars[i].toUri().toURL();
      } catch (MalformedURLException e) {
        throw new IllegalArgumentException(e);
      }
    }
    return urls;
  }

  @Override
  protected Class<?> loadClass(String name, boolean resolve) throws ClassNotFoundException {
    if (!name.startsWith(FIXTURES)) {
      return super.loadClass(name, resolve);
    }
    synchronized (getClassLoadingLock(name)) {
      Class<?> type = findLoadedClass(name);
      if (type == null) {
        type = findClass(name); // a fixture missing from the jars stays missing
      }
      if (resolve) {
        resolveClass(type);
      }
      return type;
    }
  }

  @Override
  public URL getResource(String name) {
    return name.startsWith(SERVICES) ? findResource(name) : super.getResource(name);
  }

  @Override
  public Enumeration<URL> getResources(String name) throws IOException {
    return name.startsWith(SERVICES) ? findResources(name) : super.getResources(name);
  }

  @Override
  public void close() {
    try {
      super.close();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
