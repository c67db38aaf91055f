package dev.gmem.core.plugin;

import dev.gmem.api.spi.GmemProvider;
import java.util.Objects;

/**
 * One result of provider discovery: a provider instance, or the reason one could not be created.
 * Failures travel alongside the providers so that the registry can report them instead of the
 * discovery throwing.
 *
 * <p>{@link PluginModule} fills the sets from {@link java.util.ServiceLoader}; other modules may add
 * providers with {@code @Provides @IntoSet} and {@link #of(GmemProvider)}.
 *
 * @param <P> the provider kind
 */
public sealed interface Discovered<P extends GmemProvider> {

  /** The provider's class name, or {@code unknown} when even that could not be determined. */
  String providerClass();

  /** The jar or directory the provider came from. */
  String location();

  /** A provider found outside ServiceLoader, located by its class. */
  static <P extends GmemProvider> Discovered<P> of(P provider) {
    return new Loaded<>(provider, Locations.of(provider.getClass()));
  }

  /**
   * A provider that was instantiated.
   *
   * @param provider the instance
   * @param location where its class came from
   */
  record Loaded<P extends GmemProvider>(P provider, String location) implements Discovered<P> {
    public Loaded {
      Objects.requireNonNull(provider, "provider");
      Objects.requireNonNull(location, "location");
    }

    @Override
    public String providerClass() {
      return provider.getClass().getName();
    }
  }

  /**
   * A provider that could not be loaded or instantiated.
   *
   * @param providerClass its class name, or {@code unknown}
   * @param location      where it was declared or found
   * @param message       what went wrong
   */
  record Failed<P extends GmemProvider>(String providerClass, String location, String message)
      implements Discovered<P> {
    public Failed {
      Objects.requireNonNull(providerClass, "providerClass");
      Objects.requireNonNull(location, "location");
      Objects.requireNonNull(message, "message");
    }
  }
}
