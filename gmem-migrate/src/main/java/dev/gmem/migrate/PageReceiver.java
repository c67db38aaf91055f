package dev.gmem.migrate;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.migrate.wire.Frames;
import dev.gmem.migrate.wire.Wire;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.zip.CRC32C;

/**
 * The destination's installer of arriving pages, from either connection: checks each page's
 * CRC32C and installs it only while it is still missing, so a late or duplicate copy never
 * overwrites what the guest wrote since.
 */
final class PageReceiver {
  private final MigrationDestination d;
  private final Object[] stripes = new Object[64];

  PageReceiver(MigrationDestination d) {
    this.d = d;
    for (int i = 0; i < stripes.length; i++) {
      stripes[i] = new Object();
    }
  }

  /** Checks and installs one page message's content; a bad CRC breaks the link (the page is re-sent after recovery). */
  void receive(Frames f, boolean zero, CRC32C crc) throws IOException {
    long gfn = f.readLong();
    if (d.map.index(gfn) < 0) {
      throw new Frames.ProtocolException("page for GFN 0x" + Long.toHexString(gfn) + ", which lies in no memslot");
    }
    ByteBuffer data = null;
    int sum = 0;
    if (!zero) {
      sum = f.readInt();
      data = f.readPage();
      crc.reset();
      crc.update(data.duplicate());
      if ((int) crc.getValue() != sum) {
        throw new Frames.ProtocolException("CRC32C mismatch for GFN 0x" + Long.toHexString(gfn) + ": not installed");
      }
    }
    // One installer per page at a time: a late copy must see the bit an earlier one cleared, or it
    // could overwrite what the guest wrote since.
    Long asked;
    synchronized (stripes[(int) (gfn & 63)]) {
      // Forget the request before the page lands: a fault on it after the install (the page made
      // missing again) must be able to ask anew.
      asked = d.urgent.remove(gfn);
      if (d.pages.missing(gfn) && !d.pages.paused()) {
        try {
          if (zero) {
            d.uf.installZero(d.vm, gfn * Wire.PAGE);
          } else {
            d.uf.install(d.vm, gfn * Wire.PAGE, data); // checked above: PageServer.page would check again
          }
        } catch (GmemException e) {
          if (e.errno() != Errno.EEXIST) {
            d.pages.failed("installing GFN 0x" + Long.toHexString(gfn) + ": " + e.getMessage());
          }
        }
      }
    }
    if (asked != null) {
      long rt = System.nanoTime() - asked;
      d.roundTrip.record(rt);
      MigrationEvent.DemandPage e = new MigrationEvent.DemandPage();
      if (e.isEnabled()) {
        e.gfn = gfn;
        e.roundTrip = rt;
        e.commit();
      }
    }
  }
}
