package dev.gmem.userfault;

import dev.gmem.api.Api;
import java.util.EnumMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;

/**
 * Counts of resolved faults by {@link FaultSource}, failed faults, and a latency histogram per
 * faulting thread — per vCPU, as each vCPU runs on its own thread — plus one per source. Each
 * resolved fault is also a JFR event ({@code dev.gmem.userfault.ResolvedFault}).
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public final class FaultStats {
  private final Map<FaultSource, LongAdder> resolved = new EnumMap<>(FaultSource.class);
  private final Map<FaultSource, LatencyHistogram> bySource = new EnumMap<>(FaultSource.class);
  private final ConcurrentHashMap<String, LatencyHistogram> byThread = new ConcurrentHashMap<>();
  private final LongAdder failed = new LongAdder();

  public FaultStats() {
    for (FaultSource s : FaultSource.values()) {
      resolved.put(s, new LongAdder());
      bySource.put(s, new LatencyHistogram());
    }
  }

  /** A fault from {@code source} on {@code gpa} (or host address) resolved after {@code nanos}, seen by {@code thread}. */
  public void resolved(FaultSource source, String thread, long address, long nanos) {
    resolved.get(source).increment();
    bySource.get(source).record(nanos);
    byThread.computeIfAbsent(thread, t -> new LatencyHistogram()).record(nanos);
    ResolvedFaultEvent e = new ResolvedFaultEvent();
    if (e.isEnabled()) {
      e.source = source.name();
      e.address = address;
      e.latencyNanos = nanos;
      e.commit();
    }
  }

  /** A fault that failed (deadline, dead page source, poisoned). */
  public void failed() {
    failed.increment();
  }

  public long resolved(FaultSource source) {
    return resolved.get(source).sum();
  }

  public long failedFaults() {
    return failed.sum();
  }

  public LatencyHistogram latency(FaultSource source) {
    return bySource.get(source);
  }

  /** Histograms per faulting thread (vCPU), by thread name. */
  public Map<String, LatencyHistogram> perThread() {
    return Map.copyOf(byThread);
  }
}
