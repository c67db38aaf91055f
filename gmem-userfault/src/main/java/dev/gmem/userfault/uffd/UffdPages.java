package dev.gmem.userfault.uffd;

import dev.gmem.api.Api;
import java.nio.ByteBuffer;

/**
 * What a {@link UffdHandler} asks when a registered page faults. Called on the handler's thread,
 * which never touches registered memory itself: content goes into a buffer of its own and reaches
 * the page through the kernel (UFFDIO_COPY), so no Java thread faults on a registered page.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public interface UffdPages {
  /** How a fault is answered. */
  enum Answer {
    /** {@code page} holds the content: UFFDIO_COPY. */
    DATA,
    /** The page is known to be zero (its own message, never a fallback): UFFDIO_ZEROPAGE. */
    ZERO,
    /** MINOR: the page cache holds the content already: UFFDIO_CONTINUE. */
    PRESENT,
    /** Not yet: the answer comes later through {@link UffdHandler#complete}/{@link UffdHandler#completeZero}, or the deadline poisons the page. */
    LATER
  }

  /**
   * Where the content of the page at {@code pageAddress} already lies in this process's memory (a
   * mapped snapshot): UFFDIO_COPY straight from there, without {@link #missing}; 0 for none (the
   * default).
   */
  default long mapped(UffdHandler.Region region, long pageAddress) {
    return 0;
  }

  /**
   * A MISSING fault at page {@code pageAddress} of {@code region}: fill {@code page} (4096 bytes,
   * position 0) and answer DATA, or answer ZERO or LATER. Throwing fails the fault (the page is
   * poisoned: the access fails instead of seeing made-up content).
   */
  Answer missing(UffdHandler.Region region, long pageAddress, boolean write, ByteBuffer page);

  /** A MINOR fault: the page is in the page cache but not mapped here; PRESENT once its content is right, or LATER. */
  default Answer minor(UffdHandler.Region region, long pageAddress, boolean write) {
    return Answer.PRESENT;
  }

  /** {@code [start, end)} of {@code region} was removed (MADV_REMOVE / DONTNEED): its pages fault as missing again. */
  default void removed(UffdHandler.Region region, long start, long end) {}
}
