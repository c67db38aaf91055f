package dev.gmem.migrate;

import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.Vm;
import dev.gmem.migrate.wire.Frames;
import dev.gmem.migrate.wire.Wire;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Optional;
import java.util.zip.CRC32C;

/**
 * The stream's sender of runs: up to {@link Wire#MAX_RUN} consecutive shared pages copied by one
 * GPA-view read straight into a direct buffer (the VM is stopped: its memory does not change
 * under the copy), checksummed there and written from it to the socket as one
 * {@link Wire#PAGE_RUN} — one user-space copy per page, as a raw socket transfer makes. Zero
 * pages go as ZERO messages; pages not all shared go page by page through {@link PageReader}.
 */
final class ReadAhead {
  private static final ByteBuffer ZERO = ByteBuffer.allocateDirect(Wire.PAGE);

  private final PageReader reader;
  private final Vm vm;
  private final List<Memslot> slots;
  private final ByteBuffer run = ByteBuffer.allocateDirect(Wire.MAX_RUN * Wire.PAGE);
  private final int[] crcs = new int[Wire.MAX_RUN];
  private final CRC32C crc = new CRC32C();

  ReadAhead(PageReader reader, Vm vm, List<Memslot> slots) {
    this.reader = reader;
    this.vm = vm;
    this.slots = slots;
  }

  /** What {@link #send} sent: the pages it covered (from the first) and the bytes it put on the wire. */
  record Sent(int pages, long bytes) {}

  /**
   * Sends up to {@code n} pages from GFN {@code first} (n ≤ {@link Wire#MAX_RUN}), skipping those
   * {@code skip} says went on the demand channel; fewer where a memslot ends or the run is not all
   * shared (then one page, through {@link PageReader}).
   */
  Sent send(Frames f, long first, int n, java.util.function.LongPredicate skip, PageBuffer single) throws IOException {
    int count = shared(first, n);
    if (count == 0) {
      if (skip.test(first)) {
        return new Sent(1, 0);
      }
      return new Sent(1, reader.send(f, first, single) ? Wire.PAGE_MESSAGE_BYTES : Wire.ZERO_MESSAGE_BYTES);
    }
    vm.guestMemory().read(first * Wire.PAGE, run.clear().limit(count * Wire.PAGE));
    long bytes = 0;
    int from = -1; // start of the pending data run
    for (int i = 0; i <= count; i++) {
      boolean data = false;
      boolean skipped = i < count && skip.test(first + i);
      if (i < count && !skipped) {
        ByteBuffer page = run.duplicate().position(i * Wire.PAGE).limit((i + 1) * Wire.PAGE);
        data = page.mismatch(ZERO.duplicate()) >= 0;
        if (data) {
          crcs[i] = Wire.pageCrc(crc, first + i, page);
        }
      }
      if (!data && from >= 0) {
        f.run(first + from, i - from, java.util.Arrays.copyOfRange(crcs, from, i), run.duplicate().position(from * Wire.PAGE));
        bytes += 13 + 4L * (i - from) + (long) (i - from) * Wire.PAGE;
        from = -1;
      }
      if (data && from < 0) {
        from = i;
      }
      if (i < count && !data && !skipped) {
        f.zero(first + i);
        bytes += Wire.ZERO_MESSAGE_BYTES;
      }
    }
    return new Sent(count, bytes);
  }

  /** How many of the {@code n} pages from {@code first} lie in one memslot and are all shared now (0: not so). */
  private int shared(long first, int n) {
    long gpa = first * Wire.PAGE;
    for (Memslot m : slots) {
      if (Long.compareUnsigned(gpa - m.gpa(), m.size()) < 0) {
        int k = (int) Math.min(n, (m.gpa() + m.size() - gpa) / Wire.PAGE);
        return m.file().shareability(m.offset() + gpa - m.gpa(), (long) k * Wire.PAGE).equals(Optional.of(Shareability.SHARED)) ? k : 0;
      }
    }
    return 0;
  }
}
