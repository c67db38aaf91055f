package dev.gmem.userfault.source;

import dev.gmem.api.Api;
import java.nio.ByteBuffer;

/**
 * Where a {@link PageSource} delivers, from any thread. Pages are addressed by guest frame number
 * (GPA / 4096), so a source needs no knowledge of memslots or files.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public interface PageSink {
  /**
   * The content of page {@code gfn}: 4096 bytes from {@code data}'s position, with their CRC32C.
   * A page that is no longer missing is ignored; a CRC mismatch fails the source (the page is not
   * installed: corrupt content is never served).
   */
  void page(long gfn, ByteBuffer data, int crc32c);

  /**
   * The content of {@code crc32c.length} consecutive pages from {@code firstGfn}: 4096 bytes each
   * from {@code data}'s position, with each page's CRC32C. As {@link #page} for each (by default, one
   * by one); a sink may install the run at once, but never a page that is no longer missing, and
   * nothing of a run with a CRC mismatch.
   */
  default void pages(long firstGfn, ByteBuffer data, int[] crc32c) {
    for (int i = 0; i < crc32c.length; i++) {
      int at = data.position() + i * 4096;
      page(firstGfn + i, data.duplicate().position(at).limit(at + 4096), crc32c[i]);
    }
  }

  /** Page {@code gfn} is known to be zero: a message of its own, never a fallback for a missing page. */
  void zero(long gfn);

  /** The source cannot deliver any more (connection lost, file unreadable): waiting faults fail at once. */
  void failed(String reason);

  /** Whether page {@code gfn} is still missing (a background stream may skip pages already served). */
  boolean missing(long gfn);
}
