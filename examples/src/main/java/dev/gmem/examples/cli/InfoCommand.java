package dev.gmem.examples.cli;

import dev.gmem.api.DiscoveryReport;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.HostInfo;
import dev.gmem.api.HugePagePool;
import dev.gmem.api.KvmCapability;
import dev.gmem.api.PluginDescriptor;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import java.io.PrintWriter;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/** {@code gmem info}: what the host offers, the backend chosen and why, every plugin found. */
@Command(name = "info", description = "Show host capabilities, the chosen backend and discovered plugins.")
final class InfoCommand implements Callable<Integer> {
  @Mixin RuntimeOptions options = new RuntimeOptions();

  @CommandLine.Spec
  CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() {
    PrintWriter out = spec.commandLine().getOut();
    try (GmemRuntime rt = options.open()) {
      print(rt, out);
    }
    out.flush();
    return 0;
  }

  static void print(GmemRuntime rt, PrintWriter out) {
    HostInfo h = rt.host();
    out.println("Host");
    out.printf("  kernel            %s%n", h.kernelRelease());
    if (h.kvm()) {
      out.printf("  /dev/kvm          yes, API %d%n", h.kvmApiVersion());
    } else {
      out.printf("  /dev/kvm          unusable: %s%n", h.kvmProblem().orElse("?"));
    }
    out.printf("  guest_memfd       %s, flags 0x%x (%s)%n",
        h.capability(KvmCapability.GUEST_MEMFD) != 0 ? "yes" : "no", h.guestMemfdFlags(), GmemFlags.describe(h.guestMemfdFlags()));
    out.printf("  VM types          0x%x (kernel offers:", h.vmTypes());
    for (VmType t : VmType.values()) {
      if (h.kernelOffers(t)) {
        out.print(" " + t);
      }
    }
    out.println(")");
    for (KvmCapability c : KvmCapability.values()) {
      out.printf("  cap %-4d %-24s %d%n", c.number(), c.name(), h.capability(c));
    }
    out.printf("  userfaultfd       %s%n", h.userfaultfd() ? "available" : "unavailable");
    out.printf("  memfd_secret      %s%n", h.memfdSecret() ? "available" : "unavailable");
    if (h.hugePagePools().isEmpty()) {
      out.println("  hugetlb pools     none");
    }
    for (HugePagePool p : h.hugePagePools()) {
      out.printf("  hugetlb %-9s total %d, free %d, reserved %d, surplus %d%n",
          size(p.pageSize()), p.total(), p.free(), p.reserved(), p.surplus());
    }
    out.println();
    out.println("Backend");
    out.printf("  %s: %s%n", rt.backend().name(), rt.backend().reason());
    // What this gmem does follows the backend's behavioural probe (above); the capability number
    // alone decides nothing, since out-of-tree kernels reuse numbers.
    out.printf("  private pages     %s; KVM_CAP_%s = %d%n", rt.backend().reason().contains("in-place conversion present")
        ? "the kernel converts in place and refuses host faults on private pages; gmem passes conversions through"
        : "hidden from host mappings by gmem in user space (no in-place conversion found by the probe)",
        KvmCapability.GUEST_MEMFD_MEMORY_ATTRIBUTES, h.capability(KvmCapability.GUEST_MEMFD_MEMORY_ATTRIBUTES));
    out.printf("  linked files      KVM_LINK_GUEST_MEMFD and the context move by gmem%s%n", rt.backend().name().equals("kvm")
        ? "; a destination binds the inode's memory as plain user memory unless the kernel links (probed by behaviour at the first link)"
        : " (no KVM on this backend)");
    out.printf("  post-copy         gmem-migrate, wire protocol v%d over TCP (unauthenticated plaintext: tunnel it); %s%n",
        dev.gmem.migrate.wire.Wire.VERSION, rt.feature(dev.gmem.userfault.Userfault.class).isPresent()
            ? "can receive here (the userfault feature is active)" : "can send only (the userfault feature is off)");
    out.println();
    vmTypes(rt, out);
    out.println();
    DirectMapInfo.section(rt, out);
    out.println();
    DiscoveryReport r = rt.plugins();
    out.println("Plugins");
    for (PluginDescriptor d : r.plugins()) {
      out.printf("  %-9s %-14s %-12s %-12s %s%n", d.kind().name().toLowerCase(), d.id(), d.version(), d.status(), d.location());
      d.messageIfAny().ifPresent(m -> out.printf("            %s%n", m));
    }
    for (String p : r.problems()) {
      out.printf("  problem: %s%n", p);
    }
  }

  /**
   * Per VM type, the guest_memfd flags a VM of it accepts, as a VM created here reports them: the
   * base flags its arch allows plus the bits present allocator and feature plugins give meaning to
   * (huge pages, NO_DIRECT_MAP). Nothing is listed that no present code provides.
   */
  private static void vmTypes(GmemRuntime rt, PrintWriter out) {
    out.println("VM types (guest_memfd flags a VM accepts here, with what present plugins add)");
    for (VmType type : VmType.values()) {
      String what;
      try (Vm vm = rt.createVm(type)) {
        what = GmemFlags.describe(vm.supportedGuestMemFlags()) + (type.hasPrivateMemory() ? "; private memory" : "");
      } catch (GmemException e) {
        what = "unavailable: " + e.getMessage();
      }
      out.printf("  %-17s %s%n", type, what);
    }
  }

  static String size(long bytes) {
    if (bytes >= 1L << 30 && bytes % (1L << 30) == 0) {
      return (bytes >> 30) + " GiB";
    }
    if (bytes >= 1L << 20 && bytes % (1L << 20) == 0) {
      return (bytes >> 20) + " MiB";
    }
    return (bytes >> 10) + " KiB";
  }
}
