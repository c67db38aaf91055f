package dev.gmem.core.conformance;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.google.common.base.Supplier;
import com.google.common.base.Suppliers;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.HostInfo;
import dev.gmem.api.KvmCapability;
import dev.gmem.core.backend.BackendSelector;
import dev.gmem.core.host.HostProbe;
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

  /**
   * Why this host has no kernel guest_memfd to compare gmem with, or empty where it has one: the
   * runtime's own probe and rule ({@link BackendSelector#realGuestMemfd}), asked once.
   */
  public static Optional<String> noKernelGuestMemfd() {
    return NO_KERNEL_GUEST_MEMFD.get();
  }

  private static final Supplier<Optional<String>> NO_KERNEL_GUEST_MEMFD = Suppliers.memoize(() -> {
    if (!Files.exists(Path.of("/dev/kvm"))) {
      return Optional.of("host has no /dev/kvm: no kernel guest_memfd to compare with");
    }
    Sys sys = Sys.load();
    HostInfo host = new HostProbe(sys, new Kvm(sys)).probe();
    return BackendSelector.realGuestMemfd(host) ? Optional.empty()
        : Optional.of("this host's KVM has no usable guest_memfd (KVM_CAP_GUEST_MEMFD " + host.capability(KvmCapability.GUEST_MEMFD)
            + ", KVM_CAP_GUEST_MEMFD_FLAGS " + host.guestMemfdFlags() + (host.kvmProblem().map(p -> ", " + p).orElse(""))
            + "): no kernel guest_memfd to compare gmem with");
  });

  public static GmemRuntime open(String backend) {
    return GmemRuntime.builder().property("gmem.backend", backend).build();
  }
}
