package dev.gmem.tck.internal;

import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

/** What the allocator of one kit runtime was asked, and the kit's injection (ENOMEM from a split). */
public final class AllocLog {
  /** Calls in order: "setup …", "alloc i", "free i order o", "split i o→n", "merge i o", "commit …", "abort …", "close". */
  public final List<String> events = new CopyOnWriteArrayList<>();
  private final Map<Long, AtomicInteger> freed = new ConcurrentHashMap<>();
  /** Injected: the next prepareSplit fails with ENOMEM, as an allocator out of metadata does. */
  public volatile boolean enomemOnSplit;

  void freed(long index) {
    freed.computeIfAbsent(index, k -> new AtomicInteger()).incrementAndGet();
  }

  /** Times a folio starting at {@code index} was given back. */
  public int freeCount(long index) {
    AtomicInteger n = freed.get(index);
    return n == null ? 0 : n.get();
  }

  /** Folios given back that cover {@code index}, judging by the recorded orders. */
  public long freesCovering(long index) {
    return events.stream().filter(e -> e.startsWith("free ")).filter(e -> {
      String[] w = e.split(" ");
      long at = Long.parseLong(w[1]);
      int order = Integer.parseInt(w[3]);
      return index >= at && index < at + (1L << order);
    }).count();
  }

  /** Events starting with {@code prefix}. */
  public long count(String prefix) {
    return events.stream().filter(e -> e.startsWith(prefix)).count();
  }
}
