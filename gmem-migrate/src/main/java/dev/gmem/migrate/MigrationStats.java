package dev.gmem.migrate;

import dev.gmem.api.Api;
import dev.gmem.userfault.LatencyHistogram;
import java.time.Duration;

/**
 * A finished migration, as one side saw it: total time (handshake to completion), downtime (the
 * handshake: from the source starting it, the VM stopped, to the destination's accept, the VM able
 * to run), pages, demand requests, bytes on each channel (both directions, hellos included),
 * reconnects after a broken link, and the demand round trip (request sent to page installed; on the
 * destination only).
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public record MigrationStats(Duration total, Duration downtime, long pages, long demandRequests, long streamBytes,
    long demandBytes, int reconnects, LatencyHistogram demandLatency) {

  /** A multi-line summary for an operator. */
  public String summary() {
    double secs = total.toNanos() / 1e9;
    return String.format("migration: %d pages (%.1f MiB) in %.3f s (%.1f MiB/s), downtime %.3f ms%n"
        + "  demand faults %d, stream channel %.1f MiB, demand channel %.1f MiB, reconnects %d%n"
        + "  demand round trip: %s",
        pages, pages * 4096 / 1048576.0, secs, secs == 0 ? 0 : (streamBytes + demandBytes) / 1048576.0 / secs,
        downtime.toNanos() / 1e6, demandRequests, streamBytes / 1048576.0, demandBytes / 1048576.0, reconnects,
        demandLatency.total() == 0 ? "-" : demandLatency.toString());
  }
}
