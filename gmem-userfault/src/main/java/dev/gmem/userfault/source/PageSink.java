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

  /** Page {@code gfn} is known to be zero: a message of its own, never a fallback for a missing page. */
  void zero(long gfn);

  /** The source cannot deliver any more (connection lost, file unreadable): waiting faults fail at once. */
  void failed(String reason);

  /** Whether page {@code gfn} is still missing (a background stream may skip pages already served). */
  boolean missing(long gfn);
}
