package dev.gmem.core.backend;

import dev.gmem.api.BackendInfo;
import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.HostInfo;
import dev.gmem.api.KvmCapability;
import dev.gmem.core.config.GmemConfig;
import java.util.List;
import java.util.Optional;

/**
 * Chooses kvm when /dev/kvm works, else memfd; {@code gmem.backend} overrides. The kvm backend
 * does not need the kernel's guest_memfd: where it lacks one (or one gmem can map and share),
 * gmem's memfd is the inode's memory and memslots bind it as plain user memory, as on the hosts
 * that serve guest accesses through {@code userspace_addr} anyway (kernel-uapi §4.9).
 */
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
    boolean kvmUsable = host.kvm() && host.kvmProblem().isEmpty();
    String kvmWhy = kvmUsable ? "KVM API " + host.kvmApiVersion() + ", " + memoryWhy(host) : host.kvmProblem().orElse("no /dev/kvm");
    if (override.isPresent()) {
      String name = override.get().trim();
      switch (name) {
        case "memfd":
          return new BackendInfo("memfd", "selected by " + GmemConfig.BACKEND + "=memfd");
        case "kvm":
          if (!kvmUsable) {
            throw new GmemException(Errno.ENODEV, GmemConfig.BACKEND + "=kvm but KVM is unusable here: " + kvmWhy);
          }
          return new BackendInfo("kvm", "selected by " + GmemConfig.BACKEND + "=kvm; " + kvmWhy);
        default:
          throw GmemException.einval(unknown(override).orElseThrow());
      }
    }
    return kvmUsable
        ? new BackendInfo("kvm", "automatic: /dev/kvm works (" + kvmWhy + ")")
        : new BackendInfo("memfd", "automatic: KVM unusable (" + kvmWhy + ")");
  }

  /**
   * Whether a real guest_memfd can back the kvm backend's inodes: it must be mmap-able and start
   * shared (MMAP|INIT_SHARED), as gmem maps it and binds that mapping as {@code userspace_addr}.
   */
  public static boolean realGuestMemfd(HostInfo host) {
    return host.guestMemfdSupports(GmemFlags.MMAP | GmemFlags.INIT_SHARED);
  }

  private static String memoryWhy(HostInfo host) {
    return realGuestMemfd(host)
        ? "guest_memfd flags " + GmemFlags.describe(host.guestMemfdFlags())
        : "no usable guest_memfd (KVM_CAP_GUEST_MEMFD " + host.capability(KvmCapability.GUEST_MEMFD)
            + ", flags " + GmemFlags.describe(host.guestMemfdFlags())
            + "): gmem's memfd stands in for it, bound to real memslots as plain user memory";
  }
}
