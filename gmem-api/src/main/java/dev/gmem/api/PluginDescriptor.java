package dev.gmem.api;

import java.util.Optional;

/**
 * One entry of the plugin discovery log: what was found, where, and what became of it.
 *
 * @param kind          allocator, arch or feature
 * @param id            the provider's id ({@code <class name>} when it could not be loaded)
 * @param version       the provider's version
 * @param location      the jar or directory the provider class came from
 * @param providerClass the provider's class name
 * @param status        whether it is in use
 * @param message       why it has that status
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public record PluginDescriptor(
    Kind kind, String id, String version, String location, String providerClass, Status status, String message) {

  /** Provider kinds. */
  public enum Kind {
    ALLOCATOR,
    ARCH,
    FEATURE
  }

  /** What became of a discovered provider. */
  public enum Status {
    /** Loaded, supported here, selected. */
    ACTIVE,
    /** Loaded, but its probe says the host cannot run it. */
    UNSUPPORTED,
    /** Loaded and supported, but a selection property chose another provider with the same role. */
    NOT_SELECTED,
    /** Failed to load, or its probe threw: reported and skipped. */
    BROKEN,
    /** Switched off by a property. */
    DISABLED
  }

  /** The message, when there is one. */
  public Optional<String> messageIfAny() {
    return message == null || message.isEmpty() ? Optional.empty() : Optional.of(message);
  }
}
