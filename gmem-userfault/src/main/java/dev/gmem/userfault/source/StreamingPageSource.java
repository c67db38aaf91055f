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
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public abstract class StreamingPageSource implements PageSource {
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
    ByteBuffer page = ByteBuffer.allocate(4096);
    CRC32C crc = new CRC32C();
    List<Long> order = pages();
    int next = 0;
    try {
      while (running) {
        Long gfn = urgent.poll();
        if (gfn == null) {
          gfn = hints.poll();
        }
        if (gfn == null && background) {
          while (next < order.size() && !sink.missing(order.get(next))) {
            next++;
          }
          gfn = next < order.size() ? order.get(next++) : null;
        }
        if (gfn == null) {
          gfn = urgent.poll(50, TimeUnit.MILLISECONDS);
          if (gfn == null) {
            continue;
          }
        }
        if (!sink.missing(gfn)) {
          continue;
        }
        page.clear();
        if (!read(gfn, page)) {
          sink.zero(gfn);
          continue;
        }
        page.clear();
        sink.page(gfn, page, crc32c(gfn, page, crc));
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (Exception e) {
      if (running) {
        sink.failed("page source failed: " + e);
      }
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
