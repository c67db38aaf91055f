package dev.gmem.userfault.snapshot;

import dev.gmem.api.SpecialRegisters;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.StandardOpenOption;
import java.util.HashSet;
import java.util.Set;

/**
 * The guest pages KVM itself reads through {@code userspace_addr} while the saved vCPU runs, not as
 * a vCPU access that could exit: with 4-level paging on, every page-table page reachable from CR3
 * (read from the snapshot's image), which a shadow-paging host walks on each guest TLB miss. GFNs.
 * (Descriptor tables are read only on a segment load or an event, which the guests gmem restores
 * do not make before their memory is present.)
 */
final class KernelWalkedPages {
  private static final long ADDRESS_MASK = 0x000f_ffff_ffff_f000L;

  private KernelWalkedPages() {}

  static Set<Long> of(Snapshot snapshot) throws IOException {
    SpecialRegisters s = snapshot.specialRegisters();
    Set<Long> gfns = new HashSet<>();
    if ((s.cr0() & SpecialRegisters.CR0_PG) != 0 && (s.efer() & SpecialRegisters.EFER_LMA) != 0) {
      try (FileChannel img = FileChannel.open(snapshot.dir().resolve("memory.img"), StandardOpenOption.READ)) {
        walk(img, s.cr3() & ADDRESS_MASK, 3, gfns);
      }
    }
    return gfns;
  }

  /** Adds the table at {@code table} and, below the last level, the tables its present entries point to. */
  private static void walk(FileChannel img, long table, int level, Set<Long> gfns) throws IOException {
    if (!gfns.add(table / Snapshot.PAGE) || level == 0) {
      return;
    }
    ByteBuffer b = ByteBuffer.allocate((int) Snapshot.PAGE).order(ByteOrder.LITTLE_ENDIAN);
    while (b.hasRemaining() && img.read(b, table + b.position()) > 0) {
      // a table beyond the image's end reads as zero entries (a zero page)
    }
    for (int i = 0; i < 512; i++) {
      long e = b.getLong(i * 8);
      boolean large = level < 3 && (e & 0x80) != 0;
      if ((e & 1) != 0 && !large) {
        walk(img, e & ADDRESS_MASK, level - 1, gfns);
      }
    }
  }
}
