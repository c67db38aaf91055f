package dev.gmem.examples.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.GmemRuntime;
import dev.gmem.api.KvmCapability;
import dev.gmem.api.spi.FeatureProvider;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code gmem info} says only what the probes found and the present plugins provide. */
class InfoCommandTest {

  @TempDir Path dir;

  @Test
  void withTheHugetlbPluginVmsAcceptHugePageFlagsAndNothingElseIsClaimed() {
    List<String> lines = info(PluginView.without("gmem-direct-map"));

    assertTrue(lines.contains("  DEFAULT           MMAP|INIT_SHARED|HUGE_PAGE_SIZE"), String.join("\n", lines));
    assertTrue(lines.contains("  SW_PROTECTED      MMAP|INIT_SHARED|HUGE_PAGE_SIZE; private memory"), String.join("\n", lines));
    assertTrue(lines.contains("  post-copy         gmem-migrate, wire protocol v3 over TCP (unauthenticated plaintext: tunnel it); can receive here (the userfault feature is active)"),
        String.join("\n", lines));
    assertTrue(lines.stream().anyMatch(l -> l.startsWith("  allocator hugetlb ")), String.join("\n", lines));
    assertNoClaimWithoutCode(lines);
  }

  @Test
  void withTheDirectMapPluginVmsAcceptNoDirectMapAndWriteAndInfoSaysWhatIsRemoved() {
    List<String> lines = info(InfoCommandTest.class.getClassLoader());

    assertTrue(lines.contains("  DEFAULT           MMAP|INIT_SHARED|NO_DIRECT_MAP|WRITE|HUGE_PAGE_SIZE"), String.join("\n", lines));
    assertTrue(lines.stream().anyMatch(l -> l.startsWith("  TDX ") && !l.contains("NO_DIRECT_MAP")), String.join("\n", lines));
    assertTrue(lines.stream().anyMatch(l -> l.startsWith("  feature   direct-map ")), String.join("\n", lines));
    assertTrue(lines.stream().anyMatch(l -> l.startsWith("  kernel direct map: removed")), String.join("\n", lines));
    assertTrue(lines.stream().anyMatch(l -> l.startsWith("  real vCPU on ")), String.join("\n", lines));
  }

  @Test
  void withoutTheDirectMapJarInfoSaysBothFlagsAreEinval() {
    List<String> lines = info(PluginView.without("gmem-direct-map"));

    assertTrue(lines.contains("  not on the class path, or switched off: creation flag bits 2 and 3 are EINVAL and so is write(), as on Linux 6.18"),
        String.join("\n", lines));
    assertFalse(lines.stream().anyMatch(l -> l.contains("direct-map ")), String.join("\n", lines));
  }

  @Test
  void withoutItNoVmAcceptsHugePageFlags() {
    List<String> lines = info(PluginView.without("gmem-alloc-hugetlb", "gmem-direct-map"));

    assertTrue(lines.contains("  DEFAULT           MMAP|INIT_SHARED"), String.join("\n", lines));
    assertTrue(lines.contains("  SW_PROTECTED      MMAP|INIT_SHARED; private memory"), String.join("\n", lines));
    assertFalse(lines.stream().anyMatch(l -> l.contains("HUGE_") || l.startsWith("  allocator hugetlb")),
        String.join("\n", lines));
    assertNoClaimWithoutCode(lines);
  }

  @Test
  void noDirectMapIsListedOnlyWhereAFeatureGivesItMeaning() {
    List<String> lines = info(PluginView.with(FeatureProvider.class, NoDirectMapFeature.class, dir, "gmem-direct-map"));

    assertTrue(lines.contains("  DEFAULT           MMAP|INIT_SHARED|NO_DIRECT_MAP|HUGE_PAGE_SIZE"), String.join("\n", lines));
    assertTrue(lines.stream().anyMatch(l -> l.startsWith("  feature   " + NoDirectMapFeature.ID + " ")), String.join("\n", lines));
  }

  @Test
  void thePrivatePagesLineFollowsTheInPlaceProbeNotTheCapability() {
    try (GmemRuntime rt = GmemRuntime.builder().build()) {
      long cap = rt.host().capability(KvmCapability.GUEST_MEMFD_MEMORY_ATTRIBUTES);
      boolean kvm = rt.backend().name().equals("kvm");
      assertTrue(!kvm || rt.backend().reason().contains("in-place conversion "), rt.backend().reason());
      boolean present = rt.backend().reason().contains("in-place conversion present");
      String expected = "  private pages     "
          + (present ? "the kernel converts in place and refuses host faults on private pages; gmem passes conversions through"
              : "hidden from host mappings by gmem in user space (no in-place conversion found by the probe)")
          + "; KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES = " + cap;

      assertTrue(print(rt).contains(expected), String.join("\n", print(rt)));
    }
  }

  /** 841f90e printed "NO_DIRECT_MAP, KVM userfault: implemented by gmem" from a constant, whatever was present. */
  private static void assertNoClaimWithoutCode(List<String> lines) {
    for (String line : lines) {
      assertFalse(line.contains("NO_DIRECT_MAP") || line.contains("KVM userfault") || line.contains("implemented by gmem")
          || line.contains("direct map: removed"), line);
    }
  }

  private static List<String> info(ClassLoader loader) {
    try (GmemRuntime rt = GmemRuntime.builder().classLoader(loader).build()) {
      List<String> lines = print(rt);
      assertEquals("Host", lines.get(0));
      return lines;
    }
  }

  private static List<String> print(GmemRuntime rt) {
    StringWriter text = new StringWriter();
    try (PrintWriter out = new PrintWriter(text)) {
      InfoCommand.print(rt, out);
    }
    return text.toString().lines().toList();
  }
}
