package dev.gmem.core.filemap;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.ConcurrentSkipListMap;

/**
 * Which pages of an unprepared folio are prepared all the same: a folio merged from parts of
 * which only some were prepared (the others were shared in between) must have {@code prepare}
 * run for the rest only, so that every page is prepared exactly once. Kept beside the filemap,
 * by folio start, as naturally aligned blocks {@code {index, order}}; empty but in that rare case.
 * Follows the folio through split, flag changes and removal.
 */
final class PreparedParts {
  private final ConcurrentSkipListMap<Long, List<long[]>> byFolio = new ConcurrentSkipListMap<>();

  boolean isEmpty() {
    return byFolio.isEmpty();
  }

  /** The prepared blocks of the unprepared folio at {@code start}, by index; empty when none are. */
  List<long[]> get(long start) {
    return byFolio.getOrDefault(start, List.of());
  }

  void put(long start, List<long[]> blocks) {
    if (blocks.isEmpty()) {
      byFolio.remove(start);
      return;
    }
    List<long[]> sorted = new ArrayList<>(blocks);
    sorted.sort(Comparator.comparingLong(b -> b[0]));
    byFolio.put(start, List.copyOf(sorted));
  }

  /** Forgets the folio at {@code start} (freed, or its flag now says it all). */
  void remove(long start) {
    if (!byFolio.isEmpty()) {
      byFolio.remove(start);
    }
  }

  /** Forgets the folios lying wholly inside {@code [start, end)}; {@code orderAt} gives a folio's order. */
  void removeWhollyInside(long start, long end, java.util.function.LongToIntFunction orderAt) {
    if (byFolio.isEmpty()) {
      return;
    }
    for (Long f : byFolio.subMap(start, end).keySet()) {
      if (f + (1L << orderAt.applyAsInt(f)) <= end) {
        byFolio.remove(f);
      }
    }
  }

  /** Removes and returns the blocks recorded for folios starting in {@code [start, end)}. */
  List<long[]> take(long start, long end) {
    List<long[]> out = new ArrayList<>();
    if (!byFolio.isEmpty()) {
      var range = byFolio.subMap(start, end);
      range.values().forEach(out::addAll);
      range.clear();
    }
    return out;
  }

  /**
   * The folio at {@code start} of {@code order} was split into folios of {@code newOrder}: each
   * part the record covers wholly is prepared ({@code markPrepared}), each part it covers in
   * part gets its share of the record.
   */
  void split(long start, int order, int newOrder, java.util.function.LongConsumer markPrepared) {
    List<long[]> blocks = byFolio.remove(start);
    if (blocks == null) {
      return;
    }
    long n = 1L << newOrder;
    for (long p = start; p < start + (1L << order); p += n) {
      List<long[]> share = new ArrayList<>();
      long covered = 0;
      for (long[] b : blocks) {
        long from = Math.max(p, b[0]);
        long to = Math.min(p + n, b[0] + (1L << b[1]));
        if (from < to) {
          covered += to - from;
          share.add(b[1] <= newOrder ? b : new long[] {p, newOrder});
        }
      }
      if (covered == n) {
        markPrepared.accept(p);
      } else {
        put(p, share);
      }
    }
  }
}
