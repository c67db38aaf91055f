package dev.gmem.userfault;

import dev.gmem.api.Api;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * Fault-resolution latencies in buckets of powers of two microseconds, like QEMU's
 * {@code postcopy-latency-dist}: bucket 0 counts latencies below 1 µs, bucket {@code n > 0} those
 * in {@code [2^(n-1), 2^n)} µs; the last bucket takes everything longer. Lock-free.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public final class LatencyHistogram {
  /** Buckets: up to 2^31 µs (about 36 minutes). */
  public static final int BUCKETS = 33;

  private final AtomicLongArray counts = new AtomicLongArray(BUCKETS);

  /** The bucket a latency of {@code nanos} falls in. */
  public static int bucket(long nanos) {
    long micros = nanos / 1000;
    return micros <= 0 ? 0 : Math.min(BUCKETS - 1, 64 - Long.numberOfLeadingZeros(micros));
  }

  public void record(long nanos) {
    counts.incrementAndGet(bucket(nanos));
  }

  /** A copy of the bucket counts. */
  public long[] counts() {
    long[] c = new long[BUCKETS];
    for (int i = 0; i < BUCKETS; i++) {
      c[i] = counts.get(i);
    }
    return c;
  }

  public long total() {
    long n = 0;
    for (int i = 0; i < BUCKETS; i++) {
      n += counts.get(i);
    }
    return n;
  }

  /** Non-empty buckets as {@code "<1us:3 1-2us:5 ..."}. */
  @Override
  public String toString() {
    StringBuilder sb = new StringBuilder();
    for (int i = 0; i < BUCKETS; i++) {
      long c = counts.get(i);
      if (c != 0) {
        sb.append(sb.length() == 0 ? "" : " ").append(i == 0 ? "<1" : (1L << (i - 1)) + "-" + (1L << i)).append("us:").append(c);
      }
    }
    return sb.toString();
  }
}
