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
  static final int PAGES = Wire.MAX_RUN;
  /** A page message: type, GFN, CRC32C, data. */
  static final int MESSAGE = 1 + 8 + 4 + Wire.PAGE;

  private final MigrationDestination d;
  /** Direct: a PAGE_RUN's data is read into it straight from the socket and installed from it. */
  private final ByteBuffer run = ByteBuffer.allocateDirect(PAGES * Wire.PAGE);
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
    if (Wire.pageCrc(crc, gfn, data) != sum) {
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
    run.clear().position(count * Wire.PAGE);
    run.put(data);
    count++;
  }

  /**
   * Reads a PAGE_RUN message's content (its type read) into the emptied run, straight from the
   * socket, and checks every page: a bad CRC installs the intact pages before it and breaks the
   * link (the rest are re-sent after recovery).
   */
  void addRun(Frames f) throws IOException {
    install();
    long gfn = f.readLong();
    int n = f.readInt();
    if (n < 1 || n > PAGES) {
      throw new Frames.ProtocolException("bad run length " + n);
    }
    int s = d.map.slotOf(gfn);
    if (s < 0 || d.map.slotOf(gfn + n - 1) != s) {
      throw new Frames.ProtocolException("run of " + n + " pages from GFN 0x" + Long.toHexString(gfn) + " does not lie in one memslot");
    }
    int[] sums = new int[n];
    for (int i = 0; i < n; i++) {
      sums[i] = f.readInt();
    }
    f.readFully(run.clear().limit(n * Wire.PAGE));
    first = gfn;
    slot = s;
    for (int i = 0; i < n; i++) {
      if (Wire.pageCrc(crc, gfn + i, run.duplicate().position(i * Wire.PAGE).limit((i + 1) * Wire.PAGE)) != sums[i]) {
        count = i;
        install();
        throw new Frames.ProtocolException("CRC32C mismatch for GFN 0x" + Long.toHexString(gfn + i) + ": not installed");
      }
    }
    count = n;
  }

  /** Installs the run's pages (those still missing) and empties it. */
  void install() {
    if (count > 0) {
      d.receiver.installRun(first, count, run.duplicate().position(0).limit(count * Wire.PAGE));
      count = 0;
    }
  }

  boolean isEmpty() {
    return count == 0;
  }
}
