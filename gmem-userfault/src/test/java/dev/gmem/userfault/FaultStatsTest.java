package dev.gmem.userfault;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.LongRange;
import org.junit.jupiter.api.Test;

/** The 2^N µs buckets (QEMU's postcopy-latency-dist) and the per-source, per-thread counts. */
class FaultStatsTest {
  @Test
  void bucketsArePowersOfTwoMicroseconds() {
    assertEquals(0, LatencyHistogram.bucket(999));
    assertEquals(1, LatencyHistogram.bucket(1_000));
    assertEquals(1, LatencyHistogram.bucket(1_999));
    assertEquals(2, LatencyHistogram.bucket(2_000));
    assertEquals(2, LatencyHistogram.bucket(3_999));
    assertEquals(3, LatencyHistogram.bucket(4_000));
    assertEquals(LatencyHistogram.BUCKETS - 1, LatencyHistogram.bucket(Long.MAX_VALUE));
  }

  @Property
  void aLatencyFallsInTheBucketThatBoundsIt(@ForAll @LongRange(min = 1_000, max = 1L << 40) long nanos) {
    int b = LatencyHistogram.bucket(nanos);
    long micros = nanos / 1000;
    assertTrue(b == LatencyHistogram.BUCKETS - 1 || ((1L << (b - 1)) <= micros && micros < (1L << b)), nanos + " in " + b);
  }

  @Test
  void resolvedFaultsCountBySourceAndByThread() {
    FaultStats s = new FaultStats();
    s.resolved(FaultSource.VCPU_USERFAULT, "vcpu0", 0x1000, 3_000);
    s.resolved(FaultSource.VCPU_USERFAULT, "vcpu1", 0x2000, 50_000);
    s.resolved(FaultSource.ASYNC, "vcpu0", 0x3000, 500);
    s.failed();
    assertEquals(2, s.resolved(FaultSource.VCPU_USERFAULT));
    assertEquals(1, s.resolved(FaultSource.ASYNC));
    assertEquals(0, s.resolved(FaultSource.HOST_UFFD));
    assertEquals(1, s.failedFaults());
    assertEquals(2, s.perThread().get("vcpu0").total());
    assertEquals(1, s.perThread().get("vcpu1").counts()[LatencyHistogram.bucket(50_000)]);
    assertEquals("2-4us:1 32-64us:1", s.latency(FaultSource.VCPU_USERFAULT).toString());
  }

  /** The histogram's stripes (one per thread id) add up: no record is lost or counted twice. */
  @Test
  void recordsFromManyThreadsAddUpAcrossStripes() throws Exception {
    LatencyHistogram h = new LatencyHistogram();
    int threads = 12; // more than the stripes: some threads share one
    int each = 10_000;
    java.util.List<Thread> ts = new java.util.ArrayList<>();
    for (int t = 0; t < threads; t++) {
      long nanos = 1_000L << (t % 3); // buckets 1, 2, 3
      Thread th = new Thread(() -> {
        for (int i = 0; i < each; i++) {
          h.record(nanos);
        }
      });
      ts.add(th);
      th.start();
    }
    for (Thread th : ts) {
      th.join();
    }
    long[] c = h.counts();
    assertEquals((long) threads * each, h.total());
    for (int b = 1; b <= 3; b++) {
      assertEquals((long) threads / 3 * each, c[b], "bucket " + b);
    }
  }
}
