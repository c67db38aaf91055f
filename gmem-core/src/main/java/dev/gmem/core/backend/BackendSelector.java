package dev.gmem.core.backend;

import dev.gmem.api.BackendInfo;
import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.HostInfo;
import dev.gmem.core.config.GmemConfig;
import java.util.List;
import java.util.Optional;

/** Chooses kvm when the probe allows it, else memfd; {@code gmem.backend} overrides. */
public final class BackendSelector {
  /** The values {@code gmem.backend} takes. */
  static final List<String> NAMES = List.of("kvm", "memfd");

  private BackendSelector() {}

  /** Why {@code value} of {@code gmem.backend} names no backend, naming those that exist; empty when it names one. */
  public static Optional<String> unknown(Optional<String> value) {
    return value.filter(v -> !NAMES.contains(v.trim()))
        .map(v -> GmemConfig.BACKEND + "=" + v + " names no backend; available: " + String.join(", ", NAMES));
  }

  public static BackendInfo choose(HostInfo host, Optional<String> override) {
    boolean kvmUsable = host.guestMemfdSupports(GmemFlags.MMAP | GmemFlags.INIT_SHARED);
    String kvmWhy = kvmUsable
        ? "KVM API " + host.kvmApiVersion() + ", guest_memfd flags " + GmemFlags.describe(host.guestMemfdFlags())
        : host.kvmProblem().orElse("guest_memfd lacks MMAP|INIT_SHARED (flags " + GmemFlags.describe(host.guestMemfdFlags()) + ")");
    if (override.isPresent()) {
      String name = override.get().trim();
      switch (name) {
        case "memfd":
          return new BackendInfo("memfd", "selected by " + GmemConfig.BACKEND + "=memfd");
        case "kvm":
          if (!kvmUsable) {
            throw new GmemException(Errno.ENODEV, GmemConfig.BACKEND + "=kvm but KVM cannot serve guest_memfd here: " + kvmWhy);
          }
          return new BackendInfo("kvm", "selected by " + GmemConfig.BACKEND + "=kvm; " + kvmWhy);
        default:
          throw GmemException.einval(unknown(override).orElseThrow());
      }
    }
    return kvmUsable
        ? new BackendInfo("kvm", "automatic: /dev/kvm offers guest_memfd (" + kvmWhy + ")")
        : new BackendInfo("memfd", "automatic: KVM unusable (" + kvmWhy + ")");
  }
}
