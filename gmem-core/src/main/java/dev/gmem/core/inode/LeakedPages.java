package dev.gmem.core.inode;

import java.util.Map;
import java.util.TreeMap;

/**
 * Pages of one inode the arch could not reclaim ({@code ArchContext.leak}): their indices are
 * retired for the inode's life. Kept as disjoint page runs; leaks are rare, so the fault paths
 * pay one volatile read while there are none.
 */
final class LeakedPages {
  /** Run start → run end (exclusive), disjoint and not adjacent. */
  private final TreeMap<Long, Long> runs = new TreeMap<>();
  private volatile long count;

  /** Retires {@code [start, end)}. */
  synchronized void add(long start, long end) {
    Map.Entry<Long, Long> before = runs.floorEntry(start);
    if (before != null && before.getValue() >= start) {
      start = before.getKey();
      end = Math.max(end, before.getValue());
    }
    Map.Entry<Long, Long> next;
    while ((next = runs.ceilingEntry(start)) != null && next.getKey() <= end) {
      end = Math.max(end, next.getValue());
      runs.remove(next.getKey());
    }
    runs.put(start, end);
    long n = 0;
    for (Map.Entry<Long, Long> r : runs.entrySet()) {
      n += r.getValue() - r.getKey();
    }
    count = n;
  }

  /** Whether any page of {@code [start, end)} is retired. */
  boolean intersects(long start, long end) {
    if (count == 0) {
      return false;
    }
    synchronized (this) {
      Map.Entry<Long, Long> r = runs.lowerEntry(end);
      return r != null && r.getValue() > start;
    }
  }

  boolean contains(long index) {
    return intersects(index, index + 1);
  }

  /** The retired runs within {@code [start, end)}, clipped, as {start, end} pairs. */
  synchronized long[][] within(long start, long end) {
    return runs.subMap(runs.floorKey(start) != null ? runs.floorKey(start) : start, true, end, false).entrySet().stream()
        .filter(r -> r.getValue() > start)
        .map(r -> new long[] {Math.max(start, r.getKey()), Math.min(end, r.getValue())})
        .toArray(long[][]::new);
  }

  long count() {
    return count;
  }
}
