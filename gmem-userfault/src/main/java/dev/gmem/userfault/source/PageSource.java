package dev.gmem.userfault.source;

import dev.gmem.api.Api;

/**
 * Where missing guest pages come from: a local snapshot, or a migration source across the network
 * (post-copy). Two streams share one sink: pages a fault waits for, {@linkplain #request requested
 * urgently}, and a background stream that fills the rest (prefetch hints first). A source reports
 * its own death through {@link PageSink#failed}; one that just goes silent is caught by the
 * deadline of the faults waiting for it.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public interface PageSource extends AutoCloseable {
  /** Starts delivering to {@code sink}: urgent requests as they come, the background stream meanwhile. */
  void start(PageSink sink);

  /**
   * Page {@code gfn} is wanted: {@code urgent} when a fault waits for it (serve before anything
   * else), else a prefetch hint. Must not block.
   */
  void request(long gfn, boolean urgent);

  /**
   * How long a fault waits for this source's page before it fails with EIO (a source across a
   * network may need longer than a local snapshot), or null for the runtime's
   * {@link dev.gmem.userfault.Userfault#deadline()}. Asked once, when the page server starts.
   */
  default java.time.Duration faultDeadline() {
    return null;
  }

  /** Stops delivering. */
  @Override
  void close();
}
