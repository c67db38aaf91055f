package dev.gmem.core.plugin;

import com.google.common.collect.Sets;
import dev.gmem.api.HostInfo;
import dev.gmem.api.PluginDescriptor;
import dev.gmem.api.PluginDescriptor.Kind;
import dev.gmem.api.PluginDescriptor.Status;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.AllocatorProvider;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.FeatureProvider;
import dev.gmem.api.spi.GmemProvider;
import dev.gmem.api.spi.Support;
import java.util.Comparator;
import java.util.Optional;
import java.util.Set;
import java.util.function.Function;
import java.util.function.Supplier;

/**
 * One discovered provider while the registry decides about it. Everything read from the provider
 * is read here, once and guarded, so that later selection never calls plugin code. Status and
 * message change during selection only; the registry keeps the final {@link #descriptor()}.
 */
final class Candidate<P extends GmemProvider> {

  static final String UNKNOWN_VERSION = "unknown";

  /** Report order: kind, then id; location and class only break ties between duplicates. */
  static final Comparator<Candidate<?>> ORDER = Comparator.<Candidate<?>, Kind>comparing(c -> c.kind)
      .thenComparing(c -> c.id)
      .thenComparing(c -> c.location)
      .thenComparing(c -> c.providerClass);

  final Kind kind;
  final String id;
  final String version;
  final String location;
  final String providerClass;
  /** Null when the provider could not be instantiated. */
  final P provider;
  /** Whether {@link #id} came from the provider (else it is the class name). */
  final boolean idKnown;
  final long creationFlags;
  final Set<VmType> vmTypes;
  private Status status;
  private String message;

  private Candidate(Kind kind, String id, String version, String location, String providerClass, P provider,
      boolean idKnown, long creationFlags, Set<VmType> vmTypes, Status status, String message) {
    this.kind = kind;
    this.id = id;
    this.version = version;
    this.location = location;
    this.providerClass = providerClass;
    this.provider = provider;
    this.idKnown = idKnown;
    this.creationFlags = creationFlags;
    this.vmTypes = vmTypes;
    this.status = status;
    this.message = message;
  }

  /**
   * Reads id, version and role attributes, then probes, unless {@code disabledBy} names the
   * property that switched the id off: a disabled provider is not probed, since disabling is the
   * operator's way around a misbehaving plugin.
   */
  static <P extends GmemProvider> Candidate<P> inspect(
      Kind kind, Discovered<P> found, HostInfo host, Function<String, Optional<String>> disabledBy) {
    if (found instanceof Discovered.Failed<P> failed) {
      return broken(kind, failed.providerClass(), UNKNOWN_VERSION, failed.location(), failed.providerClass(), null,
          false, failed.message());
    }
    P provider = ((Discovered.Loaded<P>) found).provider();
    String location = found.location();
    String cls = found.providerClass();
    Attempt<String> id = Attempt.of("id()", provider::id);
    if (id.failure != null) {
      return broken(kind, cls, UNKNOWN_VERSION, location, cls, provider, false, id.failure);
    }
    if (id.value == null || id.value.isBlank()) {
      return broken(kind, cls, UNKNOWN_VERSION, location, cls, provider, false, "id() returned no id");
    }
    Attempt<String> version = Attempt.of("version()", provider::version);
    String v = version.value == null ? UNKNOWN_VERSION : version.value;
    if (version.failure != null) {
      return broken(kind, id.value, v, location, cls, provider, true, version.failure);
    }
    Attempt<Long> flags = Attempt.of("creationFlags()", () -> creationFlags(provider));
    Attempt<Set<VmType>> types = Attempt.of("vmTypes()", () -> vmTypes(provider));
    String attributeFailure = flags.failure != null ? flags.failure : types.failure;
    if (attributeFailure != null) {
      return broken(kind, id.value, v, location, cls, provider, true, attributeFailure);
    }
    Optional<String> disabled = disabledBy.apply(id.value);
    if (disabled.isPresent()) {
      return new Candidate<>(kind, id.value, v, location, cls, provider, true, flags.value, types.value,
          Status.DISABLED, "disabled by " + disabled.get());
    }
    Attempt<Support> probe = Attempt.of("probe", () -> provider.probe(host));
    Status status;
    String message;
    if (probe.failure != null) {
      status = Status.BROKEN;
      message = probe.failure;
    } else if (probe.value == null) {
      status = Status.BROKEN;
      message = "probe returned null";
    } else {
      // ACTIVE is provisional: selection may still demote it.
      status = probe.value.supported() ? Status.ACTIVE : Status.UNSUPPORTED;
      message = probe.value.reason() == null ? "" : probe.value.reason();
    }
    return new Candidate<>(kind, id.value, v, location, cls, provider, true, flags.value, types.value, status, message);
  }

  private static <P extends GmemProvider> Candidate<P> broken(Kind kind, String id, String version, String location,
      String cls, P provider, boolean idKnown, String message) {
    return new Candidate<>(kind, id, version, location, cls, provider, idKnown, 0, Set.of(), Status.BROKEN, message);
  }

  private static long creationFlags(GmemProvider provider) {
    if (provider instanceof AllocatorProvider allocator) {
      return allocator.creationFlags();
    }
    if (provider instanceof FeatureProvider feature) {
      return feature.creationFlags();
    }
    return 0;
  }

  private static Set<VmType> vmTypes(GmemProvider provider) {
    if (provider instanceof ArchProvider arch) {
      Set<VmType> types = arch.vmTypes();
      // An enum set keeps VmType order, so messages list types the same way every time.
      return types == null ? Set.of() : Sets.immutableEnumSet(types);
    }
    return Set.of();
  }

  Status status() {
    return status;
  }

  String message() {
    return message;
  }

  boolean active() {
    return status == Status.ACTIVE;
  }

  void demote(Status newStatus, String newMessage) {
    this.status = newStatus;
    this.message = newMessage;
  }

  /** Keeps the status and adds what selection decided. */
  void note(String note) {
    this.message = message.isEmpty() ? note : message + "; " + note;
  }

  PluginDescriptor descriptor() {
    return new PluginDescriptor(kind, id, version, location, providerClass, status, message);
  }

  /** The outcome of one call into plugin code. */
  private static final class Attempt<T> {
    final T value;
    final String failure;

    private Attempt(T value, String failure) {
      this.value = value;
      this.failure = failure;
    }

    static <T> Attempt<T> of(String what, Supplier<T> call) {
      try {
        return new Attempt<>(call.get(), null);
      } catch (VirtualMachineError e) {
        throw e;
      } catch (RuntimeException | Error e) {
        return new Attempt<>(null, what + " failed: " + e);
      }
    }
  }
}
