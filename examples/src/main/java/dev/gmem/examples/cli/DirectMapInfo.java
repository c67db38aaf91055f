package dev.gmem.examples.cli;

import dev.gmem.api.GmemRuntime;
import dev.gmem.api.PluginDescriptor;
import dev.gmem.directmap.DirectMap;
import dev.gmem.directmap.DirectMapProvider;
import dev.gmem.directmap.SecretVcpuProbe;
import java.io.PrintWriter;

/**
 * The direct-map feature's lines of {@code gmem info}. Only loaded once discovery reported the
 * feature active, so {@code gmem info} runs without the jar on the class path.
 */
final class DirectMapInfo {
  private DirectMapInfo() {}

  /** Whether discovery found the direct-map feature and it is on (no class of the plugin is touched). */
  static boolean active(GmemRuntime rt) {
    return rt.plugins().ofKind(PluginDescriptor.Kind.FEATURE).stream()
        .anyMatch(d -> d.id().equals("direct-map") && d.status() == PluginDescriptor.Status.ACTIVE);
  }

  /** The section, whether or not the jar is there; the plugin's classes are touched only when it is. */
  static void section(GmemRuntime rt, PrintWriter out) {
    out.println("Direct map (gmem-direct-map)");
    if (!active(rt)) {
      out.println("  not on the class path, or switched off: creation flag bits 2 and 3 are EINVAL and so is write(), as on Linux 6.18");
      return;
    }
    Present.print(rt, out);
  }

  /** Holds every reference to the plugin's classes, so nothing loads them unless the feature is there. */
  private static final class Present {
    static void print(GmemRuntime rt, PrintWriter out) {
      DirectMap dm = rt.feature(DirectMap.class).orElseThrow();
      for (String layer : dm.layers()) {
        out.printf("  %s%n", layer);
      }
      SecretVcpuProbe.Result r = dm.realVcpu(rt);
      out.printf("  real vCPU on %s backend: %s — %s%n", rt.backend().name(), r.runs() ? "runs on it" : "does not run on it", r.detail());
      out.printf("  provider          %s%n", DirectMapProvider.class.getProtectionDomain().getCodeSource().getLocation());
    }
  }
}
