package dev.gmem.core.filemap;

import java.util.Map;
import java.util.concurrent.ConcurrentNavigableMap;
import java.util.concurrent.ConcurrentSkipListMap;

/**
 * Per-page reference counts (pins, mappings in use) above the filemap's own. They are rare, so only
 * pages with a count > 0 have an entry; an ordered map answers "first referenced page in a range"
 * in O(log refs). Updates are atomic per page.
 */
final class RefCounts {

  private final ConcurrentSkipListMap<Long, Integer> counts = new ConcurrentSkipListMap<>();

  int get(long page) {
    return counts.getOrDefault(page, 0);
  }

  void increment(long page) {
    counts.merge(page, 1, Integer::sum);
  }

  void decrement(long page) {
    for (;;) {
      Integer v = counts.get(page);
      if (v == null) {
        throw new IllegalStateException("page " + page + " has no reference to put");
      }
      if (v == 1 ? counts.remove(page, v) : counts.replace(page, v, v - 1)) {
        return;
      }
    }
  }

  long first(long start, long end) {
    Long k = counts.ceilingKey(start);
    return k != null && k < end ? k : -1;
  }

  int sum(long start, long end) {
    if (counts.isEmpty()) {
      return 0;
    }
    int s = 0;
    for (int v : counts.subMap(start, end).values()) {
      s += v;
    }
    return s;
  }

  /** Removes the counts of {@code [start, end)} and returns their sum. */
  int drain(long start, long end) {
    if (counts.isEmpty()) {
      return 0;
    }
    ConcurrentNavigableMap<Long, Integer> range = counts.subMap(start, end);
    int s = 0;
    for (Map.Entry<Long, Integer> e = range.pollFirstEntry(); e != null; e = range.pollFirstEntry()) {
      s += e.getValue();
    }
    return s;
  }

  int size() {
    return counts.size();
  }
}
