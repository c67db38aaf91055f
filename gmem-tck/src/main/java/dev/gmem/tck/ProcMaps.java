package dev.gmem.tck;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Which memory backs an address of this process, read from {@code /proc/self/maps}: how the kit
 * checks a raw view without touching it (a raw access to a page the host may not fault would raise
 * SIGBUS, which must never be relied on to reach Java).
 */
final class ProcMaps {
  private ProcMaps() {}

  /** The backing of {@code address}: "dev inode path" of its VMA, or "unmapped". */
  static String backing(long address) {
    List<String> lines;
    try {
      lines = Files.readAllLines(Path.of("/proc/self/maps"));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    for (String line : lines) {
      String[] f = line.trim().split("\\s+", 6);
      String[] range = f[0].split("-");
      long start = Long.parseUnsignedLong(range[0], 16);
      long end = Long.parseUnsignedLong(range[1], 16);
      if (Long.compareUnsigned(address, start) >= 0 && Long.compareUnsigned(address, end) < 0) {
        return f[3] + " " + f[4] + " " + (f.length > 5 ? f[5] : "");
      }
    }
    return "unmapped";
  }
}
