package dev.gmem.examples.cli;

import dev.gmem.api.GmemRuntime;
import java.util.LinkedHashMap;
import java.util.Map;
import picocli.CommandLine.Option;

/** Options every subcommand shares: gmem properties on the command line. */
final class RuntimeOptions {
  @Option(names = "--backend", description = "kvm or memfd (default: automatic)")
  String backend;

  @Option(names = "-D", paramLabel = "KEY=VALUE", description = "a gmem.* property, e.g. -Dgmem.allocator=hugetlb")
  Map<String, String> properties = new LinkedHashMap<>();

  GmemRuntime open() {
    GmemRuntime.Builder b = GmemRuntime.builder();
    properties.forEach(b::property);
    if (backend != null) {
      b.property("gmem.backend", backend);
    }
    return b.build();
  }
}
