package dev.gmem.examples.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code gmem snapshot} then {@code gmem restore} on the real kernel: the restored guest continues
 * and checksums the memory it sees — identical to what it wrote before the snapshot — and the
 * second restore, prefetching the first one's working set, takes fewer demand faults.
 */
class SnapshotRestoreCommandTest {
  private static final Pattern DEMAND = Pattern.compile("(\\d+) demand faults");
  private static final Pattern CRC = Pattern.compile("memory crc32c ([0-9a-f]{8})");

  @Test
  void aRealGuestSnapshottedAndLazilyRestoredContinuesWithIdenticalMemory(@TempDir Path dir) throws Exception {
    Path snap = dir.resolve("snap");
    ToolRun s = ToolRun.of("snapshot", "--dir", snap.toString(), "--size", "1");
    assertEquals(0, s.rc(), s.out() + s.err());
    Matcher before = CRC.matcher(s.out());
    assertTrue(before.find(), s.out());

    ToolRun first = ToolRun.of("restore", "--dir", snap.toString(), "--no-background");
    assertEquals(0, first.rc(), first.out() + first.err());
    assertTrue(first.out().contains("identical"), first.out());
    int demandFirst = demand(first.out());
    assertTrue(demandFirst > 256, "every page came on demand: " + first.out());
    assertTrue(Files.exists(snap.resolve("workingset")));

    ToolRun second = ToolRun.of("restore", "--dir", snap.toString());
    assertEquals(0, second.rc(), second.out() + second.err());
    assertTrue(second.out().contains("identical"), second.out());
    assertTrue(demand(second.out()) < demandFirst / 2, "prefetching the working set: " + first.out() + "\n---\n" + second.out());
    Matcher after = CRC.matcher(second.out());
    assertTrue(after.find(), second.out());
    assertEquals(before.group(1), after.group(1), "full residency: the same bytes as the snapshot");
  }

  private static int demand(String out) {
    Matcher m = DEMAND.matcher(out);
    assertTrue(m.find(), out);
    return Integer.parseInt(m.group(1));
  }
}
