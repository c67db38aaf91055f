package dev.gmem.core.config;

import dev.gmem.api.GmemRuntime;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * The effective configuration of one runtime: {@code gmem.*} properties (system properties
 * overridden by builder properties) and the class loader plugins are discovered through.
 *
 * @param properties  the effective properties; copied, so later changes to the source map are not seen
 * @param classLoader the loader {@link java.util.ServiceLoader} discovery uses
 */
public record GmemConfig(Map<String, String> properties, ClassLoader classLoader) {

  public GmemConfig {
    properties = Map.copyOf(properties);
    Objects.requireNonNull(classLoader, "classLoader");
  }

  /** The configuration a {@link GmemRuntime.Builder} describes. */
  public static GmemConfig from(GmemRuntime.Builder builder) {
    return new GmemConfig(builder.properties(), builder.classLoader());
  }

  /** The property's value, if set. */
  public Optional<String> get(String key) {
    return Optional.ofNullable(properties.get(key));
  }

  /**
   * A boolean property: {@code true} or {@code false} (any case, surrounding blanks ignored), or
   * {@code dflt} when unset.
   *
   * @throws IllegalArgumentException when the value is neither; a typo must not silently flip a
   *     switch, so the caller decides how to report it
   */
  public boolean flag(String key, boolean dflt) {
    String value = properties.get(key);
    if (value == null) {
      return dflt;
    }
    switch (value.trim().toLowerCase(Locale.ROOT)) {
      case "true":
        return true;
      case "false":
        return false;
      default:
        throw new IllegalArgumentException(key + "=" + value + " must be true or false");
    }
  }
}
