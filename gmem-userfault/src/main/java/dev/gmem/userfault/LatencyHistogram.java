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

  /**
   * Stripes, a thread's chosen by its id: vCPU threads resolving faults at once record latencies
   * that fall in the same bucket, and one shared counter made each fault move that cache line
   * between cores (as {@code LongAdder}'s cells, but fixed: a histogram lives as long as its VM).
   */
  private static final int STRIPES = 8;

  private final AtomicLongArray[] stripes = new AtomicLongArray[STRIPES];

  public LatencyHistogram() {
    for (int i = 0; i < STRIPES; i++) {
      stripes[i] = new AtomicLongArray(BUCKETS);
    }
  }

  /** The bucket a latency of {@code nanos} falls in. */
  public static int bucket(long nanos) {
    long micros = nanos / 1000;
    return micros <= 0 ? 0 : Math.min(BUCKETS - 1, 64 - Long.numberOfLeadingZeros(micros));
  }

  public void record(long nanos) {
    stripes[(int) Thread.currentThread().getId() & (STRIPES - 1)].incrementAndGet(bucket(nanos));
  }

  /** A copy of the bucket counts. */
  public long[] counts() {
    long[] c = new long[BUCKETS];
    for (AtomicLongArray s : stripes) {
      for (int i = 0; i < BUCKETS; i++) {
        c[i] += s.get(i);
      }
    }
    return c;
  }

  public long total() {
    long n = 0;
    for (long c : counts()) {
      n += c;
    }
    return n;
  }

  /** Non-empty buckets as {@code "<1us:3 1-2us:5 ..."}. */
  @Override
  public String toString() {
    StringBuilder sb = new StringBuilder();
    long[] counts = counts();
    for (int i = 0; i < BUCKETS; i++) {
      long c = counts[i];
      if (c != 0) {
        sb.append(sb.length() == 0 ? "" : " ").append(i == 0 ? "<1" : (1L << (i - 1)) + "-" + (1L << i)).append("us:").append(c);
      }
    }
    return sb.toString();
  }
}
