package dev.gmem.migrate;

import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.Vm;
import dev.gmem.migrate.wire.Frames;
import dev.gmem.migrate.wire.Wire;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.zip.CRC32C;

/**
 * The stream's read-ahead: a run of up to 64 shared pages read through the GPA view in one call
 * (the VM is stopped: its memory does not change under the copy), then sent page by page from it.
 */
final class ReadAhead {
  private final PageReader reader;
  private final Vm vm;
  private final List<Memslot> slots;
  static final int PAGES = 64;

  final byte[] run = new byte[PAGES * Wire.PAGE];
  final ByteBuffer wrap = ByteBuffer.wrap(run);
  final CRC32C crc = new CRC32C();
  long first = -1;
  int count;

  ReadAhead(PageReader reader, Vm vm, List<Memslot> slots) {
    this.reader = reader;
    this.vm = vm;
    this.slots = slots;
  }

  /** Sends page {@code gfn} of the stream; whether it carried data. */
  boolean send(Frames f, long gfn, PageBuffer single) throws IOException {
    if (gfn < first || gfn >= first + count) {
      fill(gfn);
    }
    if (count == 0) {
      return reader.send(f, gfn, single); // private (or not shared): page by page
    }
    int off = (int) (gfn - first) * Wire.PAGE;
    if (java.util.Arrays.mismatch(run, off, off + Wire.PAGE, PageReader.ZERO, 0, Wire.PAGE) < 0) {
      f.zero(gfn);
      return false;
    }
    crc.reset();
    crc.update(run, off, Wire.PAGE);
    f.page(gfn, wrap.duplicate().position(off), (int) crc.getValue());
    return true;
  }

  private void fill(long gfn) {
    first = -1;
    count = 0;
    long gpa = gfn * Wire.PAGE;
    for (Memslot m : slots) {
      if (Long.compareUnsigned(gpa - m.gpa(), m.size()) < 0) {
        int n = (int) Math.min(PAGES, (m.gpa() + m.size() - gpa) / Wire.PAGE);
        if (m.file().shareability(m.offset() + gpa - m.gpa(), (long) n * Wire.PAGE).equals(java.util.Optional.of(Shareability.SHARED))) {
          vm.guestMemory().read(gpa, run, 0, n * Wire.PAGE);
          first = gfn;
          count = n;
        }
        return;
      }
    }
  }
}
