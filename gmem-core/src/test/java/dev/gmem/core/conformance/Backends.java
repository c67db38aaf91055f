package dev.gmem.core.conformance;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.KvmCapability;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Kvm;
import dev.gmem.core.sys.Sys;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import java.util.stream.Stream;

/**
 * The backends a conformance test runs on. kvm is left out only where the host has no /dev/kvm;
 * on the project's machines both always run.
 */
public final class Backends {
  private Backends() {}

  public static Stream<String> names() {
    return Files.exists(Path.of("/dev/kvm")) ? Stream.of("kvm", "memfd") : Stream.of("memfd");
  }

  /**
   * Skips the calling test where the kernel has no guest_memfd gmem could use (not built in, or
   * without MMAP|INIT_SHARED): a comparison with the kernel's own guest_memfd has nothing to compare
   * with there. Everything else about KVM still runs on such a host (the kvm backend then binds
   * gmem's memfd as plain user memory).
   */
  public static void assumeKernelGuestMemfd() {
    Optional<String> why = noKernelGuestMemfd();
    assumeTrue(why.isEmpty(), () -> why.orElseThrow());
  }

  /** Why this host has no kernel guest_memfd to compare gmem with, or empty where it has one. */
  public static Optional<String> noKernelGuestMemfd() {
    if (!Files.exists(Path.of("/dev/kvm"))) {
      return Optional.of("host has no /dev/kvm: no kernel guest_memfd to compare with");
    }
    Kvm kvm = new Kvm(Sys.load());
    long cap;
    long flags;
    try (Fd device = kvm.openDevice()) {
      cap = kvm.checkExtension(device, KvmCapability.GUEST_MEMFD.number());
      flags = kvm.checkExtension(device, KvmCapability.GUEST_MEMFD_FLAGS.number());
    }
    long needed = GmemFlags.MMAP | GmemFlags.INIT_SHARED;
    return cap != 0 && (flags & needed) == needed ? Optional.empty()
        : Optional.of("this host's KVM has no usable guest_memfd (KVM_CAP_GUEST_MEMFD " + cap + ", KVM_CAP_GUEST_MEMFD_FLAGS " + flags
            + "): no kernel guest_memfd to compare gmem with");
  }

  public static GmemRuntime open(String backend) {
    return GmemRuntime.builder().property("gmem.backend", backend).build();
  }
}
