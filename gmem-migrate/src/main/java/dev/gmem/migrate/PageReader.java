package dev.gmem.migrate;

import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.migrate.wire.Frames;
import dev.gmem.migrate.wire.Wire;
import java.io.IOException;
import java.util.List;

/** The source's reader of single pages, through gmem only, and their page or zero messages. */
final class PageReader {
  static final byte[] ZERO = new byte[Wire.PAGE];

  private final Vm vm;
  private final List<Memslot> slots;

  PageReader(Vm vm, List<Memslot> slots) {
    this.vm = vm;
    this.slots = slots;
  }

  /**
   * Reads page {@code gfn} through gmem: a shared page through the GPA view, a private page through
   * the software vCPU's private access (never a raw host read). False when it is all zeros.
   */
  boolean read(long gfn, byte[] buf) throws IOException {
    long gpa = gfn * Wire.PAGE;
    for (Memslot m : slots) {
      if (Long.compareUnsigned(gpa - m.gpa(), m.size()) < 0) {
        Shareability s = m.file().shareability(m.offset() + gpa - m.gpa());
        if (s == Shareability.SHARED) {
          vm.guestMemory().read(gpa, buf, 0, Wire.PAGE);
        } else if (s == Shareability.PRIVATE) {
          VcpuExit exit = vm.softwareVcpu().read(gpa, buf, 0, Wire.PAGE, true);
          if (exit != null) {
            throw new IOException("private page at GPA 0x" + Long.toHexString(gpa) + " could not be read: " + exit);
          }
        } else {
          throw new IOException("page at GPA 0x" + Long.toHexString(gpa) + " is " + s + ": nobody may read it");
        }
        return java.util.Arrays.mismatch(buf, 0, Wire.PAGE, ZERO, 0, Wire.PAGE) >= 0;
      }
    }
    throw new Frames.ProtocolException("GFN 0x" + Long.toHexString(gfn) + " lies in no memslot");
  }

  /** Sends page {@code gfn}; whether it carried data (else it was a zero message). */
  boolean send(Frames f, long gfn, PageBuffer b) throws IOException {
    if (read(gfn, b.bytes)) {
      f.page(gfn, b.wrap, Wire.pageCrc(b.crc, gfn, b.wrap.duplicate().clear()));
      return true;
    }
    f.zero(gfn);
    return false;
  }
}
