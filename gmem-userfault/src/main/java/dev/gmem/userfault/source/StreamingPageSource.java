package dev.gmem.userfault.source;

import dev.gmem.api.Api;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.concurrent.LinkedBlockingDeque;
import java.util.concurrent.TimeUnit;
import java.util.zip.CRC32C;

/**
 * A page source that reads pages itself ({@link #read}) on one thread of its own: urgent requests
 * first, then prefetch hints, then the background fill in the order {@link #pages()} gives.
 *
 * <p>Urgent requests go one page at a time (a vCPU waits on each). Hints and the background fill
 * go in runs of up to {@value #RUN} consecutive missing pages (hints recorded in either direction),
 * delivered with one {@link PageSink#pages} each: a page at a time the prefetcher was no faster than
 * the guest it should be ahead of, which caught up with it at once and demanded nearly every page
 * itself (RestoreBench: 7,733 demand faults without prefetch, 7,553 with).
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public abstract class StreamingPageSource implements PageSource {
  /** Pages per run of hints or background fill. */
  static final int RUN = 64;
  private static final int PAGE = 4096;

  private final LinkedBlockingDeque<Long> urgent = new LinkedBlockingDeque<>();
  private final LinkedBlockingDeque<Long> hints = new LinkedBlockingDeque<>();
  private volatile boolean running;
  private volatile boolean background = true;
  private Thread thread;

  /** The pages to fill in the background, in order. */
  protected abstract List<Long> pages();

  /**
   * Reads page {@code gfn} into {@code into} (4096 bytes, position 0); returns false when the page is
   * known to be zero (nothing read). Throws when it cannot be read: the source fails.
   */
  protected abstract boolean read(long gfn, ByteBuffer into) throws Exception;

  /**
   * The CRC32C the sink checks page {@code gfn}'s content against ({@code page}, 4096 bytes from
   * position 0). By default the CRC of what {@link #read} produced, which guards the hand-over only;
   * a source that stores a checksum with each page (a snapshot) returns the stored one, so content
   * corrupted at rest is refused instead of installed.
   */
  protected int crc32c(long gfn, ByteBuffer page, CRC32C scratch) {
    scratch.reset();
    scratch.update(page.duplicate());
    return (int) scratch.getValue();
  }

  /** Whether the background fill runs (on by default); without it only requested pages are served. */
  public void background(boolean on) {
    background = on;
  }

  @Override
  public synchronized void start(PageSink sink) {
    if (thread != null) {
      throw new IllegalStateException("started twice");
    }
    running = true;
    thread = new Thread(() -> serve(sink), "gmem-page-source");
    thread.setDaemon(true);
    thread.start();
  }

  @Override
  public void request(long gfn, boolean urgentRequest) {
    (urgentRequest ? urgent : hints).add(gfn);
  }

  private void serve(PageSink sink) {
    ByteBuffer page = ByteBuffer.allocate(PAGE);
    ByteBuffer run = ByteBuffer.allocate(RUN * PAGE);
    CRC32C crc = new CRC32C();
    List<Long> order = pages();
    int next = 0;
    long[] gfns = new long[RUN];
    try {
      while (running) {
        Long gfn = urgent.poll();
        if (gfn != null) {
          if (sink.missing(gfn)) {
            serveOne(sink, gfn, page, crc);
          }
          continue;
        }
        int n = hintRun(sink, gfns);
        if (n == 0 && background) {
          while (next < order.size() && !sink.missing(order.get(next))) {
            next++;
          }
          while (next < order.size() && n < RUN && (n == 0 || order.get(next) == gfns[n - 1] + 1) && sink.missing(order.get(next))) {
            gfns[n++] = order.get(next++);
          }
        }
        if (n > 0) {
          serveRun(sink, gfns, n, run, crc);
          continue;
        }
        gfn = urgent.poll(50, TimeUnit.MILLISECONDS);
        if (gfn != null && sink.missing(gfn)) {
          serveOne(sink, gfn, page, crc);
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (Exception e) {
      if (running) {
        sink.failed("page source failed: " + e);
      }
    }
  }

  /**
   * The next run of missing hinted pages into {@code gfns}, in hint order: consecutive GFNs going
   * up or down; hints no longer missing are dropped. Returns how many.
   */
  private int hintRun(PageSink sink, long[] gfns) {
    int n = 0;
    long step = 0;
    while (n < RUN) {
      Long g = hints.peekFirst();
      if (g == null) {
        break;
      }
      if (!sink.missing(g)) {
        hints.pollFirst();
        continue;
      }
      if (n > 0) {
        long d = g - gfns[n - 1];
        if ((d != 1 && d != -1) || (step != 0 && d != step)) {
          break;
        }
        step = d;
      }
      gfns[n++] = hints.pollFirst();
    }
    return n;
  }

  private void serveOne(PageSink sink, long gfn, ByteBuffer page, CRC32C crc) throws Exception {
    page.clear();
    if (!read(gfn, page)) {
      sink.zero(gfn);
      return;
    }
    page.clear();
    sink.page(gfn, page, crc32c(gfn, page, crc));
  }

  /** {@code n} consecutive GFNs (up or down) as runs in ascending order; known-zero pages as messages of their own. */
  private void serveRun(PageSink sink, long[] gfns, int n, ByteBuffer run, CRC32C crc) throws Exception {
    long first = Math.min(gfns[0], gfns[n - 1]);
    int start = 0;
    int[] crcs = new int[n];
    for (int i = 0; i < n; i++) {
      ByteBuffer slot = run.duplicate().position(i * PAGE).limit((i + 1) * PAGE).slice();
      if (read(first + i, slot)) {
        crcs[i] = crc32c(first + i, run.duplicate().position(i * PAGE).limit((i + 1) * PAGE).slice(), crc);
        continue;
      }
      deliver(sink, first, start, i, run, crcs);
      sink.zero(first + i);
      start = i + 1;
    }
    deliver(sink, first, start, n, run, crcs);
  }

  private static void deliver(PageSink sink, long first, int from, int to, ByteBuffer run, int[] crcs) {
    if (from < to) {
      sink.pages(first + from, run.duplicate().position(from * PAGE).limit(to * PAGE), java.util.Arrays.copyOfRange(crcs, from, to));
    }
  }

  @Override
  public void close() {
    running = false;
    Thread t;
    synchronized (this) {
      t = thread;
    }
    if (t != null) {
      t.interrupt();
      try {
        t.join(5000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }
}
