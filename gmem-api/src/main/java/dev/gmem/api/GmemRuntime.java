package dev.gmem.api;

import dev.gmem.api.spi.RuntimeFactory;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;

/**
 * The entry point: owns the host probe, the chosen backend, the discovered plugins and every VM,
 * file and mapping created through it. Closing the runtime releases all of them.
 *
 * <p>Configuration comes from {@code gmem.*} system properties, overridden by
 * {@link Builder#property}. Recognised keys: {@code gmem.backend} ({@code kvm}|{@code memfd}),
 * {@code gmem.allocator} (allocator id), {@code gmem.arch.<VmType>} (arch id),
 * {@code gmem.feature.<id>} ({@code false} disables a feature). Any other key, or a value that
 * names no backend, allocator, arch, VM type or feature, makes {@link Builder#build()} fail with
 * EINVAL naming what exists: a typo is never silently replaced by a default.
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public interface GmemRuntime extends AutoCloseable {

  /** A runtime configured from system properties. */
  static GmemRuntime create() {
    return builder().build();
  }

  static Builder builder() {
    return new Builder();
  }

  /** What the host offers. */
  HostInfo host();

  /** The backend in use and why it was chosen. */
  BackendInfo backend();

  /** The plugin discovery log. */
  DiscoveryReport plugins();

  /** The effective configuration (system properties overridden by builder properties). */
  Map<String, String> properties();

  /** Creates a VM of {@code type}; EINVAL when no arch supports the type. */
  Vm createVm(VmType type);

  /**
   * The active feature instance that implements {@code type}, if any: how a VMM reaches a
   * feature's own API (a userfault bitmap, direct-map statistics) without a cast. Empty when the
   * feature's jar is absent, disabled ({@code gmem.feature.<id>=false}) or failed its probe.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default <T> Optional<T> feature(Class<T> type) {
    return Optional.empty();
  }

  /** Releases every VM, file and mapping still open. Idempotent. */
  @Override
  void close();

  /** Configures and builds a runtime. */
  @Api(status = Api.Status.STABLE, since = "0.1")
  final class Builder {
    private final Map<String, String> properties = new LinkedHashMap<>();
    private ClassLoader classLoader;

    Builder() {
      for (String name : System.getProperties().stringPropertyNames()) {
        if (name.startsWith("gmem.")) {
          properties.put(name, System.getProperty(name));
        }
      }
    }

    /** Sets a configuration property, overriding the system property of the same name. */
    public Builder property(String key, String value) {
      if (value == null) {
        properties.remove(key);
      } else {
        properties.put(key, value);
      }
      return this;
    }

    /** The class loader plugins are discovered through (default: the thread context loader). */
    public Builder classLoader(ClassLoader loader) {
      this.classLoader = loader;
      return this;
    }

    public Map<String, String> properties() {
      return Map.copyOf(properties);
    }

    public ClassLoader classLoader() {
      ClassLoader cl = classLoader != null ? classLoader : Thread.currentThread().getContextClassLoader();
      return cl != null ? cl : GmemRuntime.class.getClassLoader();
    }

    /**
     * Builds the runtime through the implementation found on the class path (gmem-core).
     *
     * @throws GmemException EINVAL when the configuration names something that does not exist
     */
    public GmemRuntime build() {
      Iterator<RuntimeFactory> it = ServiceLoader.load(RuntimeFactory.class, classLoader()).iterator();
      while (true) {
        try {
          if (!it.hasNext()) {
            break;
          }
          return it.next().create(this);
        } catch (ServiceConfigurationError e) {
          throw new IllegalStateException("gmem runtime implementation failed to load: " + e.getMessage(), e);
        }
      }
      throw new IllegalStateException(
          "no gmem runtime on the class path: add dev.gmem:gmem-core (it provides " + RuntimeFactory.class.getName() + ")");
    }
  }
}
