package dev.gmem.core.host;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The real 2 MiB pool grown and given back exactly, also when the JVM is interrupted (Ctrl-C)
 * before the owner closes it. Needs root; run under {@code flock /tmp/gmem-verify.lock} like every
 * test that resizes the pool.
 */
class HugePagesTest {
  private static final long MIB2 = 2L << 20;
  private static final Path NR = HostProbe.SYSFS_HUGEPAGES.resolve("hugepages-2048kB/nr_hugepages");

  @BeforeEach
  void needsAWritablePool() {
    assumeTrue(Files.isWritable(NR), "the 2 MiB hugetlb pool cannot be resized here (needs root): " + NR);
  }

  @Test
  void growAddsThePagesAndCloseGivesThePoolBackAsFound() throws Exception {
    long before = nr();
    try (HugePages grown = HugePages.grow(MIB2, 2)) {
      assertEquals(before, grown.original());
      assertEquals(before + 2, nr());
      assertTrue(grown.counters().available() >= 2, grown.counters().toString());
    }

    assertEquals(before, nr());
  }

  @Test
  void aPoolThatIsNotThereIsRefusedWithoutATrace() {
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> HugePages.grow(4096L << 20, 1));

    assertTrue(e.getMessage().startsWith("this kernel has no 4 GiB hugetlb pool"), e.getMessage());
  }

  @Test
  void anInterruptedJvmGivesThePoolBackInItsShutdownHook() throws Exception {
    long before = nr();
    Process child = new ProcessBuilder(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-cp", System.getProperty("java.class.path"), GrowAndWait.class.getName()))
        .redirectErrorStream(true).start();
    try (BufferedReader lines = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8))) {
      assertEquals("grown", lines.readLine());
      assertEquals(before + 1, nr());
      // What Ctrl-C sends.
      assertEquals(0, new ProcessBuilder("kill", "-INT", Long.toString(child.pid())).start().waitFor());
      assertTrue(child.waitFor(30, TimeUnit.SECONDS), "the child did not end on SIGINT");
    } finally {
      child.destroyForcibly();
    }

    assertEquals(before, nr());
  }

  private static long nr() throws Exception {
    return Long.parseLong(Files.readString(NR).trim());
  }

  /** Grows the pool by one page, says so, and waits to be interrupted without closing it. */
  public static final class GrowAndWait {
    public static void main(String[] args) throws InterruptedException {
      HugePages.grow(MIB2, 1);
      System.out.println("grown");
      System.out.flush();
      Thread.sleep(60_000);
    }
  }
}
