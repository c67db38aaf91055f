package dev.gmem.core.conformance;

import dev.gmem.api.GmemRuntime;
import java.nio.file.Files;
import java.nio.file.Path;
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

  public static GmemRuntime open(String backend) {
    return GmemRuntime.builder().property("gmem.backend", backend).build();
  }
}
