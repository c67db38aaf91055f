package dev.gmem.userfault.snapshot;

import dev.gmem.api.Api;
import dev.gmem.userfault.source.StreamingPageSource;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;

/** Serves a {@link Snapshot}'s pages: positional reads of {@code memory.img}; known-zero pages as zero messages. */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public final class SnapshotPageSource extends StreamingPageSource {
  private final Snapshot snapshot;
  private final FileChannel image;
  private final BitSet zero;
  private final List<Long> order = new ArrayList<>();

  public SnapshotPageSource(Snapshot snapshot) throws IOException {
    this.snapshot = snapshot;
    snapshot.checksums(); // loaded now: a snapshot without them fails here, not at a fault
    this.image = FileChannel.open(snapshot.dir().resolve("memory.img"), StandardOpenOption.READ);
    this.zero = snapshot.zeroPages();
    for (Snapshot.SlotMeta s : snapshot.slots()) {
      for (long p = 0; p < s.size() / Snapshot.PAGE; p++) {
        order.add(s.gpa() / Snapshot.PAGE + p);
      }
    }
  }

  @Override
  protected List<Long> pages() {
    return order;
  }

  @Override
  protected boolean read(long gfn, ByteBuffer into) throws IOException {
    if (gfn < Integer.MAX_VALUE && zero.get((int) gfn)) {
      if (snapshot.crc32c(gfn) != Snapshot.ZERO_CRC) {
        // zero.bits says zero, the page's checksum says otherwise: never serve zeros for content
        throw Snapshot.corrupt("GFN 0x" + Long.toHexString(gfn) + " is marked zero but its checksum is not a zero page's");
      }
      return false;
    }
    long at = gfn * Snapshot.PAGE;
    while (into.hasRemaining()) {
      int n = image.read(into, at + into.position());
      if (n < 0) {
        throw Snapshot.corrupt("memory.img ends before GFN 0x" + Long.toHexString(gfn));
      }
    }
    return true;
  }

  /** The checksum stored when the snapshot was written: content changed on disk since fails the sink's check. */
  @Override
  protected int crc32c(long gfn, ByteBuffer page, java.util.zip.CRC32C scratch) {
    return snapshot.crc32c(gfn);
  }

  @Override
  public void close() {
    super.close();
    try {
      image.close();
    } catch (IOException ignored) {
      // read-only
    }
  }
}
