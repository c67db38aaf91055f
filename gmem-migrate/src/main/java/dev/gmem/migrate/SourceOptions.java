package dev.gmem.migrate;

import dev.gmem.api.Api;
import java.time.Duration;
import java.util.List;

/**
 * How a source migrates: the stream's order (a recorded working set first, then every page in GFN
 * order), how long it keeps trying to reconnect after the link broke, and an optional bandwidth cap
 * for the background stream (demand pages are never capped), or no stream at all.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public record SourceOptions(List<Long> workingSet, Duration recoveryTimeout, Duration connectTimeout, long maxStreamBytesPerSecond,
    boolean background) {
  public SourceOptions {
    workingSet = List.copyOf(java.util.Objects.requireNonNull(workingSet, "workingSet"));
    java.util.Objects.requireNonNull(recoveryTimeout, "recoveryTimeout");
    java.util.Objects.requireNonNull(connectTimeout, "connectTimeout");
    if (recoveryTimeout.isNegative()) {
      throw new IllegalArgumentException("recoveryTimeout must not be negative: " + recoveryTimeout);
    }
    if (connectTimeout.isNegative() || connectTimeout.isZero() || connectTimeout.toMillis() > Integer.MAX_VALUE) {
      throw new IllegalArgumentException("connectTimeout must be positive and below 2^31 ms: " + connectTimeout);
    }
    if (maxStreamBytesPerSecond < 0) {
      throw new IllegalArgumentException("maxStreamBytesPerSecond must not be negative (0: no cap): " + maxStreamBytesPerSecond);
    }
  }

  /** Sequential order, 10 s of recovery, 5 s to connect, no cap. */
  public static SourceOptions defaults() {
    return new SourceOptions(List.of(), Duration.ofSeconds(10), Duration.ofSeconds(5), 0, true);
  }

  /** Streams {@code gfns} first (e.g. a previous run's {@code PageServer.demandOrder()}). */
  public SourceOptions withWorkingSet(List<Long> gfns) {
    return new SourceOptions(gfns, recoveryTimeout, connectTimeout, maxStreamBytesPerSecond, background);
  }

  public SourceOptions withRecoveryTimeout(Duration d) {
    return new SourceOptions(workingSet, d, connectTimeout, maxStreamBytesPerSecond, background);
  }

  /**
   * How long a connect may take; also, with the recovery timeout, how long the destination may
   * take to answer and stay silent on an open link (see docs/migration.md, "Failures").
   */
  public SourceOptions withConnectTimeout(Duration d) {
    return new SourceOptions(workingSet, recoveryTimeout, d, maxStreamBytesPerSecond, background);
  }

  /** Caps the background stream at {@code bytesPerSecond} (0: no cap). */
  public SourceOptions withMaxStreamBandwidth(long bytesPerSecond) {
    return new SourceOptions(workingSet, recoveryTimeout, connectTimeout, bytesPerSecond, background);
  }

  /**
   * Whether the background stream runs (on by default). Off, only demanded pages move and the
   * migration never completes by itself: for measuring demand faults alone.
   */
  public SourceOptions withBackground(boolean on) {
    return new SourceOptions(workingSet, recoveryTimeout, connectTimeout, maxStreamBytesPerSecond, on);
  }
}
