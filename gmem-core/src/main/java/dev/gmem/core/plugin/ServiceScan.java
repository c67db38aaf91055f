package dev.gmem.core.plugin;

import dev.gmem.api.spi.GmemProvider;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Enumeration;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;
import java.util.regex.Pattern;

/**
 * Runs {@link ServiceLoader} one provider at a time so that a provider that fails to load or to
 * construct becomes a {@link Discovered.Failed} entry instead of ending discovery.
 */
final class ServiceScan {

  static final String UNKNOWN_CLASS = "unknown";

  /**
   * ServiceLoader promises to move on after an error; this bounds the loop should a broken loader
   * keep failing without advancing.
   */
  static final int MAX_CONSECUTIVE_FAILURES = 1000;

  private ServiceScan() {}

  /** Every provider of {@code spi} visible through {@code loader}, loaded or failed, in discovery order. */
  static <P extends GmemProvider> Set<Discovered<P>> scan(Class<P> spi, ClassLoader loader) {
    List<Discovered<P>> found = new ArrayList<>();
    List<Throwable> unattributed = new ArrayList<>();
    Iterator<ServiceLoader.Provider<P>> it = ServiceLoader.load(spi, loader).stream().iterator();
    int failuresInARow = 0;
    while (true) {
      ServiceLoader.Provider<P> provider;
      try {
        if (!it.hasNext()) {
          break;
        }
        provider = it.next();
        failuresInARow = 0;
      } catch (VirtualMachineError e) {
        throw e;
      } catch (ServiceConfigurationError | LinkageError | RuntimeException e) {
        // The class was never obtained: attributed to a services entry below.
        unattributed.add(e);
        if (++failuresInARow >= MAX_CONSECUTIVE_FAILURES) {
          found.add(new Discovered.Failed<>(UNKNOWN_CLASS, Locations.UNKNOWN,
              "gave up discovering " + spi.getName() + " after " + MAX_CONSECUTIVE_FAILURES + " consecutive failures"));
          break;
        }
        continue;
      }
      found.add(instantiate(provider));
    }
    found.addAll(attribute(spi, loader, unattributed, found));
    return new LinkedHashSet<>(found);
  }

  private static <P extends GmemProvider> Discovered<P> instantiate(ServiceLoader.Provider<P> provider) {
    Class<? extends P> type = provider.type();
    String location = Locations.of(type);
    try {
      return new Discovered.Loaded<>(provider.get(), location);
    } catch (VirtualMachineError e) {
      throw e;
    } catch (ServiceConfigurationError | LinkageError | RuntimeException e) {
      return new Discovered.Failed<>(type.getName(), location, describe(e));
    }
  }

  /** The error and its cause in one line: the cause is usually what the plugin author needs. */
  static String describe(Throwable e) {
    if (e instanceof ServiceConfigurationError) {
      return e.getCause() == null ? e.getMessage() : e.getMessage() + ": " + e.getCause();
    }
    return e.toString();
  }

  /**
   * Names the services entry behind each failure whose class never loaded. The JDK's messages
   * name the class ("Provider x.Y not found"); failures that do not (a missing superclass reports
   * the superclass) are paired in order with the declared entries nothing else accounts for, since
   * ServiceLoader reads the entries in declaration order.
   */
  private static <P extends GmemProvider> List<Discovered<P>> attribute(
      Class<P> spi, ClassLoader loader, List<Throwable> failures, List<Discovered<P>> found) {
    Map<String, String> declared = declarations(spi, loader);
    Set<String> unaccounted = new LinkedHashSet<>(declared.keySet());
    found.forEach(d -> unaccounted.remove(d.providerClass()));
    List<Discovered<P>> result = new ArrayList<>();
    List<Throwable> anonymous = new ArrayList<>();
    for (Throwable failure : failures) {
      String name = namedIn(failure.getMessage(), unaccounted);
      if (name == null) {
        anonymous.add(failure);
      } else {
        unaccounted.remove(name);
        result.add(new Discovered.Failed<>(name, declared.get(name), describe(failure)));
      }
    }
    boolean pairable = anonymous.size() == unaccounted.size();
    Iterator<String> names = unaccounted.iterator();
    for (Throwable failure : anonymous) {
      String name = pairable ? names.next() : null;
      result.add(new Discovered.Failed<>(
          name == null ? UNKNOWN_CLASS : name, name == null ? Locations.UNKNOWN : declared.get(name), describe(failure)));
    }
    return result;
  }

  /** The longest candidate that appears in {@code message} as a whole class name. */
  private static String namedIn(String message, Set<String> candidates) {
    if (message == null) {
      return null;
    }
    String best = null;
    for (String name : candidates) {
      boolean named = Pattern.compile("(?<![\\w.$])" + Pattern.quote(name) + "(?![\\w$]|\\.\\w)").matcher(message).find();
      if (named && (best == null || name.length() > best.length())) {
        best = name;
      }
    }
    return best;
  }

  /** Class name → location of the first services file declaring it, in ServiceLoader's reading order. */
  private static Map<String, String> declarations(Class<?> spi, ClassLoader loader) {
    String resource = "META-INF/services/" + spi.getName();
    Map<String, String> declared = new LinkedHashMap<>();
    try {
      Enumeration<URL> files = loader.getResources(resource);
      while (files.hasMoreElements()) {
        URL file = files.nextElement();
        String location = Locations.ofResource(file, resource);
        for (String name : entries(file)) {
          declared.putIfAbsent(name, location);
        }
      }
    } catch (IOException | RuntimeException e) {
      // Only used to name the jar in a failure report; without it the failure says "unknown location".
    }
    return declared;
  }

  private static List<String> entries(URL file) {
    List<String> names = new ArrayList<>();
    try (InputStream in = file.openStream();
        BufferedReader reader = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
      String line;
      while ((line = reader.readLine()) != null) {
        int comment = line.indexOf('#');
        String name = (comment >= 0 ? line.substring(0, comment) : line).trim();
        if (!name.isEmpty()) {
          names.add(name);
        }
      }
    } catch (IOException e) {
      // As above: the entry stays unattributed.
    }
    return names;
  }
}
