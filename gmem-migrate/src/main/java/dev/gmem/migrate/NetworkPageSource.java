package dev.gmem.migrate;

import dev.gmem.userfault.source.PageSink;
import dev.gmem.userfault.source.PageSource;
import java.io.IOException;

/** The page server's source: urgent requests go out on the demand channel; the source picks the stream's order. */
final class NetworkPageSource implements PageSource {
  private final MigrationDestination d;

  NetworkPageSource(MigrationDestination d) {
    this.d = d;
  }

  @Override
  public void start(PageSink sink) {
    // pages arrive on the link's threads
  }

  /**
   * Sends the request from the faulting thread itself when the demand connection is free (one
   * thread hand-off less per fault: 9 bytes into an all but empty send buffer), else queues it
   * for the link's sender.
   */
  @Override
  public void request(long gfn, boolean urgentRequest) {
    if (!urgentRequest || d.urgent.putIfAbsent(gfn, System.nanoTime()) != null) {
      return;
    }
    d.demandRequests.incrementAndGet();
    d.lastDemandNanos = System.nanoTime();
    DestinationLink l = d.link;
    if (l != null && !l.closed && l.sending.tryLock()) {
      try {
        l.demand.request(gfn);
        l.demand.flush();
        return;
      } catch (IOException e) {
        d.demandQueue.add(gfn); // sent again once the link is back
        d.linkDown(l, e);
        return;
      } finally {
        l.sending.unlock();
      }
    }
    d.demandQueue.add(gfn);
  }

  /** The destination's {@link DestinationOptions#faultDeadline()}: this VM's, not the runtime's. */
  @Override
  public java.time.Duration faultDeadline() {
    return d.options.faultDeadline();
  }

  @Override
  public void close() {
    // the link is closed by the destination
  }
}
