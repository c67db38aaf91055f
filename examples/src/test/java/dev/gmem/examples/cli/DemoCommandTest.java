package dev.gmem.examples.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.gmem.api.HugePagePool;
import dev.gmem.core.host.HostProbe;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@code gmem demo} end to end on the real kernel, as the README's first command runs it. As root
 * the hugetlb chapter grows the 2 MiB pool when it has no free page and gives it back exactly;
 * runs of the suite that resize the pool hold {@code /tmp/gmem-verify.lock}.
 */
class DemoCommandTest {
  private static final Path NR = HostProbe.SYSFS_HUGEPAGES.resolve("hugepages-2048kB/nr_hugepages");

  @ParameterizedTest
  @ValueSource(strings = {"kvm", "memfd"})
  void theDemoRunsEveryChapterAndLeavesTheHugetlbPoolAsFound(String backend) {
    assumeTrue(backend.equals("memfd") || Files.exists(Path.of("/dev/kvm")), "no /dev/kvm here");
    HugePagePool before = pool();

    ToolRun run = ToolRun.of("-Dgmem.backend=" + backend, "demo");

    List<String> lines = run.out().lines().toList();
    assertEquals(0, run.rc(), run.err());
    assertEquals("VM of type DEFAULT; guest_memfd flags it accepts: MMAP|INIT_SHARED|NO_DIRECT_MAP|WRITE|HUGE_PAGE_SIZE", lines.get(1));
    // The direct-map chapter: populated by write(), the guest ran, the kernel's GUP refused, the second write sealed.
    assertTrue(lines.stream().anyMatch(l -> l.startsWith("the kernel's GUP on the same page: vmsplice -> EFAULT")), run.out());
    assertTrue(lines.contains("a second write() of the data page: EEXIST (sealed); the guest's byte is still 0x42"), run.out());
    assertTrue(lines.contains("pin() of the data page: EFAULT, as GUP fails on memory removed from the direct map"), run.out());
    assertTrue(lines.contains("  createGuestMemFile(MMAP|NO_DIRECT_MAP): EINVAL"), run.out());
    assertTrue(lines.contains("after the pin is released the same call succeeds: [[0, 16) PRIVATE]"), run.out());
    assertTrue(lines.contains("TD: MRTD equal across two runs: yes"), run.out());
    assertTrue(lines.contains("TD: MapGPA of 5 MiB -> 3 exits, status 0x0"), run.out());
    assertTrue(lines.contains("TD: host reads the shared page: \"hello from the TD\""), run.out());
    assertTrue(lines.contains("TD: the next guest access -> EIO; the VM closes cleanly"), run.out());
    if (Files.isWritable(NR) || before.available() > 0) {
      assertTrue(lines.contains("page 1 private again: merged back, folios [Folio[index=0, order=9, refcount=0]]"),
          run.out());
    }
    if (before.available() == 0 && Files.isWritable(NR)) {
      assertTrue(lines.contains("hugetlb: the 2 MiB pool had no free page; added 1 for this chapter (nr_hugepages "
          + before.total() + " -> " + (before.total() + 1) + "), given back at its end"), run.out());
      assertTrue(lines.contains("hugetlb: pool given back (nr_hugepages " + before.total() + ", as found)"), run.out());
    }
    assertFalse(run.out().contains("skipped") && Files.isWritable(NR), run.out());
    assertTrue(lines.stream().anyMatch(l -> l.startsWith("  a second VM built from the same image: ") && l.endsWith("-> the same measurement")), run.out());
    assertTrue(lines.contains("  host reads the shared page: \"hello host, from the SNP guest\""), run.out());
    if (backend.equals("kvm")) {
      assertTrue(lines.stream().anyMatch(l -> l.startsWith("  a real vCPU of the DEFAULT KVM VM underneath reads the shared page: ") && l.endsWith("('h')")), run.out());
      assertTrue(lines.contains("  and the private page 8 (a shared access: no C-bit here) -> MemoryFault[flags=0x0 gpa=0x108000 size=0x1000]"), run.out());
      // post-copy between two JVMs: the guest continued on this one, every page identical to the source JVM's
      assertTrue(lines.stream().anyMatch(l -> l.startsWith("  every page: identical (source ") && l.endsWith("guest continued with the right checksum")),
          run.out());
    }
    assertTrue(lines.contains("  a reclaim fails (injected RMPUPDATE failure): leaked pages 1, VM dead: true, next guest access -> EIO, VM closed cleanly"),
        run.out());
    if (backend.equals("kvm")) { // the userfault chapter needs real vCPUs
      assertTrue(lines.stream().anyMatch(l -> l.startsWith("  64-bit guest filled 1024 pages under set bits: 1024 USERFAULT exits")), run.out());
      assertTrue(lines.stream().anyMatch(l -> l.startsWith("  page 0 punched, its bit set: the sum pass exits 1 time(s)") && l.endsWith("sum identical")),
          run.out());
      assertTrue(lines.stream().anyMatch(l -> l.startsWith("  first restore: ") && l.contains("guest sum identical") && l.endsWith(" 1024 demand faults")),
          run.out());
      assertTrue(lines.stream().anyMatch(l -> l.startsWith("  second restore, prefetching") && l.contains("guest sum identical")), run.out());
    } else {
      assertTrue(lines.contains("  needs the userfault feature and real vCPUs (kvm backend): not run on this backend"), run.out());
    }
    assertEquals(before, pool());
  }

  private static HugePagePool pool() {
    return HostProbe.hugePagePools(HostProbe.SYSFS_HUGEPAGES).stream()
        .filter(p -> p.pageSize() == 2L << 20).findFirst().orElse(new HugePagePool(2L << 20, 0, 0, 0, 0));
  }
}
