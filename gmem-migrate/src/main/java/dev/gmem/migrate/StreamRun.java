package dev.gmem.migrate;

import dev.gmem.migrate.wire.Frames;
import dev.gmem.migrate.wire.Wire;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.zip.CRC32C;

/**
 * The stream reader's run of consecutive pages, each checked (CRC32C) as it arrives, installed
 * together with one {@code Userfault.installRun}: one GPA-view write per run instead of a copy and
 * the view's locks per 4 KiB. A run is installed before the reader would block on the socket and
 * whenever a fault waits, so a page never waits in it for more stream data.
 */
final class StreamRun {
  static final int PAGES = 64;
  /** A page message: type, GFN, CRC32C, data. */
  static final int MESSAGE = 1 + 8 + 4 + Wire.PAGE;

  private final MigrationDestination d;
  private final byte[] run = new byte[PAGES * Wire.PAGE];
  private final CRC32C crc = new CRC32C();
  private long first;
  private int slot;
  private int count;

  StreamRun(MigrationDestination d) {
    this.d = d;
  }

  /** Reads a PAGE_DATA message's content (its type read), checks it and adds it to the run; a bad CRC breaks the link. */
  void add(Frames f) throws IOException {
    long gfn = f.readLong();
    int s = d.map.slotOf(gfn);
    if (s < 0) {
      throw new Frames.ProtocolException("page for GFN 0x" + Long.toHexString(gfn) + ", which lies in no memslot");
    }
    int sum = f.readInt();
    ByteBuffer data = f.readPage();
    crc.reset();
    crc.update(data.duplicate());
    if ((int) crc.getValue() != sum) {
      install(); // what was checked goes in; this page is re-sent after recovery
      throw new Frames.ProtocolException("CRC32C mismatch for GFN 0x" + Long.toHexString(gfn) + ": not installed");
    }
    if (count > 0 && (count == PAGES || gfn != first + count || s != slot)) {
      install();
    }
    if (count == 0) {
      first = gfn;
      slot = s;
    }
    data.get(run, count * Wire.PAGE, Wire.PAGE);
    count++;
  }

  /** Installs the run's pages (those still missing) and empties it. */
  void install() {
    if (count > 0) {
      d.receiver.installRun(first, count, ByteBuffer.wrap(run, 0, count * Wire.PAGE));
      count = 0;
    }
  }

  boolean isEmpty() {
    return count == 0;
  }
}
