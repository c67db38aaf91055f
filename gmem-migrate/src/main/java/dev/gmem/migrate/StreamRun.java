package dev.gmem.migrate;

import dev.gmem.migrate.wire.Frames;
import dev.gmem.migrate.wire.Wire;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.zip.CRC32C;

/**
 * The stream reader's run of consecutive pages, each checked (CRC32C) as it arrives, installed
 * together with one {@code Userfault.installRun}: one GPA-view write per run instead of a copy and
 * the view's locks per 4 KiB. A run is handed to the {@link RunInstaller} (which installs it on its
 * own thread) before the reader would block on the socket and whenever a fault waits, so a page
 * never waits in it for more stream data. Only checked pages are handed over.
 */
final class StreamRun {
  static final int PAGES = Wire.MAX_RUN;
  /** A page message: type, GFN, CRC32C, data. */
  static final int MESSAGE = 1 + 8 + 4 + Wire.PAGE;

  private final MigrationDestination d;
  private final RunInstaller installer;
  /** Direct, from the installer's ring: a PAGE_RUN's data is read into it straight from the socket and installed from it. */
  private ByteBuffer run;
  private final CRC32C crc = new CRC32C();
  private long first;
  private int slot;
  private int count;

  StreamRun(MigrationDestination d, RunInstaller installer) {
    this.d = d;
    this.installer = installer;
  }

  private ByteBuffer buffer() throws IOException {
    if (run == null) {
      run = installer.take();
    }
    return run;
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
    buffer().clear().position(count * Wire.PAGE);
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
    f.readFully(buffer().clear().limit(n * Wire.PAGE));
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

  /** Hands the run's pages to the installer (it installs those still missing) and empties it. */
  void install() throws IOException {
    if (count > 0) {
      ByteBuffer full = run;
      run = null;
      int n = count;
      count = 0;
      installer.submit(first, n, full);
    }
  }

  /** Gives back the buffer it holds, if any (the reader is done). */
  void release() {
    if (run != null) {
      installer.giveBack(run);
      run = null;
    }
  }

  boolean isEmpty() {
    return count == 0;
  }
}
