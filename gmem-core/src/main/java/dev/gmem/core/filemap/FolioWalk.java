package dev.gmem.core.filemap;

import static dev.gmem.core.filemap.Filemap.CHUNK_MASK;
import static dev.gmem.core.filemap.Filemap.CHUNK_SHIFT;

/**
 * The filemap's range walks over its chunk table: folios, runs of present pages, presence of a
 * whole range, and the prepared-flag clear of a range. Each skips unpopulated chunks and treats a
 * huge folio or a full 512-page chunk as one step, so whole-range passes over gigabytes stay
 * cheap. Ranges are page indices, already checked by {@link Filemap}.
 */
final class FolioWalk {
  private FolioWalk() {}

  /** First chunk past the one holding page {@code end - 1}. */
  static long chunkEnd(long end) {
    return ((end - 1) >>> CHUNK_SHIFT) + 1;
  }

  /** Order of the folio covering {@code index}, or -1. */
  static int orderAt(ChunkTable table, long index) {
    Object slot = table.get(index >>> CHUNK_SHIFT);
    if (slot instanceof SmallChunk c) {
      return c.orderAt((int) (index & CHUNK_MASK));
    }
    if (slot instanceof HugeFolio h && h.isLive()) {
      return h.order;
    }
    return -1;
  }

  /** See {@link Filemap#forEachFolio}. */
  static void forEachFolio(ChunkTable table, long start, long end, Filemap.FolioVisitor visitor) {
    long lastChunk = chunkEnd(end);
    for (long c = table.next(start >>> CHUNK_SHIFT, lastChunk); c >= 0; c = table.next(c + 1, lastChunk)) {
      Object slot = table.get(c);
      if (slot instanceof HugeFolio h) {
        if (h.isLive()) {
          visitor.visit(h.start, h.order);
        }
        c = h.endChunk() - 1;
      } else if (slot instanceof SmallChunk sc) {
        long base = c << CHUNK_SHIFT;
        int lo = (int) (Math.max(start, base) - base);
        int hi = (int) (Math.min(end, base + SmallChunk.PAGES) - base);
        int o = sc.orderAt(lo);
        int off = o < 0 ? lo : lo & -(1 << o);
        while (off < hi) {
          o = sc.orderAt(off);
          if (o < 0) {
            off++;
            continue;
          }
          visitor.visit(base + off, o);
          off += 1 << o;
        }
      }
    }
  }

  /** Joins adjacent present ranges into maximal runs and hands each finished run on. */
  private static final class Runs {
    private final Filemap.RunVisitor visitor;
    private long start = -1;
    private long end = -1;

    Runs(Filemap.RunVisitor visitor) {
      this.visitor = visitor;
    }

    void add(long s, long e) {
      if (s == end) {
        end = e;
        return;
      }
      flush();
      start = s;
      end = e;
    }

    void flush() {
      if (start >= 0) {
        visitor.visit(start, end);
      }
    }
  }

  /** See {@link Filemap#forEachPresentRun}. */
  static void forEachPresentRun(ChunkTable table, long start, long end, Filemap.RunVisitor visitor) {
    Runs runs = new Runs(visitor);
    long lastChunk = chunkEnd(end);
    for (long c = table.next(start >>> CHUNK_SHIFT, lastChunk); c >= 0; c = table.next(c + 1, lastChunk)) {
      Object slot = table.get(c);
      long base = c << CHUNK_SHIFT;
      if (slot instanceof HugeFolio h) {
        c = h.endChunk() - 1;
        long s = Math.max(start, h.start);
        long e = Math.min(end, h.start + h.nrPages());
        if (h.isLive() && s < e) {
          runs.add(s, e);
        }
        continue;
      }
      if (!(slot instanceof SmallChunk sc)) {
        continue;
      }
      int lo = (int) (Math.max(start, base) - base);
      int hi = (int) (Math.min(end, base + SmallChunk.PAGES) - base);
      if (sc.isFull()) {
        if (lo < hi) {
          runs.add(base + lo, base + hi);
        }
        continue;
      }
      for (int off = lo; off < hi; ) {
        while (off < hi && sc.orderAt(off) < 0) {
          off++;
        }
        if (off == hi) {
          break;
        }
        int s = off;
        while (off < hi && sc.orderAt(off) >= 0) {
          off++;
        }
        runs.add(base + s, base + off);
      }
    }
    runs.flush();
  }

  /** See {@link Filemap#clearPrepared(long, long)}. */
  static void clearPrepared(ChunkTable table, long start, long end) {
    long lastChunk = chunkEnd(end);
    for (long c = table.next(start >>> CHUNK_SHIFT, lastChunk); c >= 0; c = table.next(c + 1, lastChunk)) {
      Object slot = table.get(c);
      if (slot instanceof HugeFolio h) {
        if (h.isLive() && h.start >= start && h.start + h.nrPages() <= end) {
          h.casPrepared(false);
        }
        c = h.endChunk() - 1;
      } else if (slot instanceof SmallChunk sc) {
        long base = c << CHUNK_SHIFT;
        int lo = (int) (Math.max(start, base) - base);
        int hi = (int) (Math.min(end, base + SmallChunk.PAGES) - base);
        // Only folios wholly inside: round lo up and hi down to the folio boundaries found there.
        int o = sc.orderAt(lo);
        if (o > 0 && (lo & ((1 << o) - 1)) != 0) {
          lo = (lo | ((1 << o) - 1)) + 1;
        }
        if (hi < SmallChunk.PAGES && hi > lo) {
          int oh = sc.orderAt(hi - 1);
          if (oh > 0 && (hi & ((1 << oh) - 1)) != 0) {
            hi = hi & -(1 << oh);
          }
        }
        if (lo < hi) {
          SmallChunk next = sc.withoutPrepared(lo, hi - lo);
          if (next != sc) {
            table.set(c, next);
          }
        }
      }
    }
  }

  /** See {@link Filemap#allPresent}. */
  static boolean allPresent(ChunkTable table, long start, long end) {
    for (long i = start; i < end; ) {
      if ((i & CHUNK_MASK) == 0 && end - i >= SmallChunk.PAGES
          && table.get(i >>> CHUNK_SHIFT) instanceof SmallChunk sc && sc.isFull()) {
        i += SmallChunk.PAGES;
        continue;
      }
      int o = orderAt(table, i);
      if (o < 0) {
        return false;
      }
      i = (i & -(1L << o)) + (1L << o);
    }
    return true;
  }
}
