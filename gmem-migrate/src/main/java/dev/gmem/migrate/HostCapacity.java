package dev.gmem.migrate;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.migrate.wire.Handshake;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Whether this host can hold what a handshake declares. Post-copy ends with every page resident,
 * so guest memory beyond the host's RAM and swap can never complete; and the destination keeps
 * per-page state (userfault bitmaps, the stand-in for stage 2) for every memslot page, so an
 * unchecked size from the wire sized allocations of gigabytes before anything failed.
 */
final class HostCapacity {
  private HostCapacity() {}

  /** ENOMEM when the memslots need more bytes than the host has ({@code MemTotal + SwapTotal}); EINVAL for a negative or overflowing size. */
  static void check(Handshake hs) {
    long bytes = 0;
    for (Handshake.SlotInfo s : hs.slots()) {
      if (s.size() < 0) {
        throw GmemException.einval("memslot " + s.slot() + " of negative size " + s.size());
      }
      try {
        bytes = Math.addExact(bytes, s.size());
      } catch (ArithmeticException e) {
        throw GmemException.einval("the memslots' sizes overflow 64 bits");
      }
    }
    long host = hostBytes();
    if (bytes > host) {
      throw new GmemException(Errno.ENOMEM, "the source's memslots hold " + bytes + " bytes, this host has " + host
          + " bytes of RAM and swap: post-copy could never make them resident");
    }
  }

  private static long hostBytes() {
    long kib = 0;
    try {
      for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
        if (line.startsWith("MemTotal:") || line.startsWith("SwapTotal:")) {
          kib += Long.parseLong(line.replaceAll("[^0-9]", ""));
        }
      }
    } catch (IOException | NumberFormatException e) {
      return Long.MAX_VALUE; // no /proc: nothing to judge by
    }
    return kib == 0 ? Long.MAX_VALUE : kib * 1024;
  }
}
