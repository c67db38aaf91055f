package dev.gmem.migrate;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.migrate.wire.Frames;
import dev.gmem.migrate.wire.Wire;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.locks.ReentrantLock;
import java.util.zip.CRC32C;

/**
 * The destination's installer of arriving pages, from either connection: checks each page's
 * CRC32C and installs it only while it is still missing, so a late or duplicate copy never
 * overwrites what the guest wrote since. Single pages (demand channel, zero pages) go in one by
 * one; the stream's runs of consecutive pages in one call ({@link StreamRun}).
 */
final class PageReceiver {
  private final MigrationDestination d;
  /**
   * One installer per page at a time: a late copy must see the bit an earlier one cleared. Many
   * stripes, so a demand page rarely waits for a stream run (≤ {@link StreamRun#PAGES} of them):
   * a page ahead of the stream shares a stripe with the run being installed less than once in a
   * hundred faults (64 / 8192), which a p99 sees.
   */
  private static final int STRIPES = 8192;
  private final ReentrantLock[] stripes = new ReentrantLock[STRIPES];

  PageReceiver(MigrationDestination d) {
    this.d = d;
    for (int i = 0; i < stripes.length; i++) {
      stripes[i] = new ReentrantLock();
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
    if (zero) {
      if (f.readInt() != Wire.pageCrc(crc, gfn, Wire.NO_DATA)) {
        throw new Frames.ProtocolException("CRC32C mismatch for the ZERO of GFN 0x" + Long.toHexString(gfn) + ": not installed");
      }
    } else {
      sum = f.readInt();
      data = f.readPage();
      if (Wire.pageCrc(crc, gfn, data) != sum) {
        throw new Frames.ProtocolException("CRC32C mismatch for GFN 0x" + Long.toHexString(gfn) + ": not installed");
      }
    }
    Long asked;
    ReentrantLock stripe = stripes[(int) (gfn & (STRIPES - 1))];
    stripe.lock();
    try {
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
    } finally {
      stripe.unlock();
    }
    answered(gfn, asked);
  }

  /**
   * Installs {@code count} checked pages from GFN {@code first} (consecutive, one memslot), their
   * stripes held in index order; pages present meanwhile are skipped by {@code installRun}.
   */
  void installRun(long first, int count, ByteBuffer pages) {
    int held = Math.min(count, STRIPES);
    long[] asked = new long[count];
    lockRun(first, held);
    try {
      boolean anyAsked = !d.urgent.isEmpty(); // a request racing this check is answered on the demand channel, which forgets it
      for (int k = 0; k < count; k++) {
        Long t = anyAsked ? d.urgent.remove(first + k) : null;
        asked[k] = t == null ? -1 : t;
      }
      if (!d.pages.paused()) {
        try {
          d.uf.installRun(d.vm, first * Wire.PAGE, pages);
        } catch (GmemException e) {
          d.pages.failed("installing " + count + " pages from GFN 0x" + Long.toHexString(first) + ": " + e.getMessage());
        }
      }
    } finally {
      unlockRun(first, held);
    }
    for (int k = 0; k < count; k++) {
      if (asked[k] >= 0) {
        answered(first + k, asked[k]);
      }
    }
  }

  /** Takes the stripes of {@code n} consecutive GFNs (n ≤ 64: distinct stripes) in ascending stripe order. */
  private void lockRun(long first, int n) {
    int lo = (int) (first & (STRIPES - 1));
    int wrapped = lo + n - STRIPES; // stripes 0..wrapped-1 come first when the run wraps around
    for (int s = 0; s < wrapped; s++) {
      stripes[s].lock();
    }
    for (int s = lo; s < Math.min(STRIPES, lo + n); s++) {
      stripes[s].lock();
    }
  }

  private void unlockRun(long first, int n) {
    int lo = (int) (first & (STRIPES - 1));
    for (int k = 0; k < n; k++) {
      stripes[(lo + k) & (STRIPES - 1)].unlock();
    }
  }

  private void answered(long gfn, Long asked) {
    if (asked == null) {
      return;
    }
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
