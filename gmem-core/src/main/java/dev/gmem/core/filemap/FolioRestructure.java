package dev.gmem.core.filemap;

import static dev.gmem.core.filemap.Filemap.CHUNK_MASK;
import static dev.gmem.core.filemap.Filemap.CHUNK_SHIFT;

import dev.gmem.api.Folio;
import java.util.List;

/**
 * The filemap's structural changes: removing the folios of a range, splitting a folio and merging
 * a block back into one. The caller holds the invalidate lock exclusively (see {@link Filemap});
 * arguments are checked by {@link Filemap}. Each returns the change in the folio count (remove:
 * the removed folios themselves), which {@link Filemap} accounts.
 */
final class FolioRestructure {
  private FolioRestructure() {}

  /** See {@link Filemap#remove}; appends the removed folios to {@code out}. */
  static void remove(ChunkTable table, RefCounts refs, long start, long end, List<Folio> out) {
    long lastChunk = FolioWalk.chunkEnd(end);
    for (long c = table.next(start >>> CHUNK_SHIFT, lastChunk); c >= 0; c = table.next(c + 1, lastChunk)) {
      Object slot = table.get(c);
      if (slot instanceof HugeFolio h) {
        if (h.isLive() && h.start >= start && h.start + h.nrPages() <= end) {
          for (long k = h.firstChunk(); k < h.endChunk(); k++) {
            table.set(k, null);
          }
          out.add(new Folio(h.start, h.order, refs.drain(h.start, h.start + h.nrPages())));
        }
        c = h.endChunk() - 1;
      } else if (slot instanceof SmallChunk) {
        removeInChunk(table, refs, c, start, end, out);
      }
    }
  }

  private static void removeInChunk(ChunkTable table, RefCounts refs, long chunk, long start, long end, List<Folio> out) {
    long base = chunk << CHUNK_SHIFT;
    int lo = (int) (Math.max(start, base) - base);
    int hi = (int) (Math.min(end, base + SmallChunk.PAGES) - base);
    SmallChunk sc = (SmallChunk) table.get(chunk);
    int off = lo;
    while (off < hi) {
      int o = sc.orderAt(off);
      if (o < 0) {
        off++;
        continue;
      }
      int fs = off & -(1 << o);
      int n = 1 << o;
      if (fs >= lo && fs + n <= hi) {
        sc = SmallChunk.with(sc, fs, n, (byte) 0, -n);
        out.add(new Folio(base + fs, o, refs.drain(base + fs, base + fs + n)));
        if (sc == null) {
          break;
        }
      }
      off = fs + n;
    }
    table.set(chunk, sc);
  }

  /** See {@link Filemap#split}; returns the folio-count change. */
  static long split(ChunkTable table, long index, int newOrder) {
    long chunk = index >>> CHUNK_SHIFT;
    Object slot = table.get(chunk);
    if (slot instanceof HugeFolio h && h.isLive()) {
      requireAbove(h.order, newOrder, index);
      boolean prepared = h.prepared();
      if (newOrder >= CHUNK_SHIFT) {
        long per = 1L << (newOrder - CHUNK_SHIFT);
        for (long c = h.firstChunk(); c < h.endChunk(); c += per) {
          HugeFolio part = new HugeFolio(c << CHUNK_SHIFT, newOrder, HugeFolio.LIVE, prepared);
          for (long k = c; k < c + per; k++) {
            table.set(k, part);
          }
        }
      } else {
        SmallChunk full = SmallChunk.full(newOrder, prepared);
        for (long c = h.firstChunk(); c < h.endChunk(); c++) {
          table.set(c, full);
        }
      }
      return (1L << (h.order - newOrder)) - 1;
    }
    int off = (int) (index & CHUNK_MASK);
    SmallChunk sc = slot instanceof SmallChunk s ? s : null;
    int order = sc == null ? -1 : sc.orderAt(off);
    if (order < 0) {
      throw new IllegalStateException("no folio at page " + index);
    }
    requireAbove(order, newOrder, index);
    int fs = off & -(1 << order);
    table.set(chunk, SmallChunk.with(sc, fs, 1 << order, SmallChunk.encode(newOrder, sc.prepared(fs)), 0));
    return (1L << (order - newOrder)) - 1;
  }

  /** See {@link Filemap#merge}; adds the parts that were prepared to {@code prepared}; returns the folio-count change. */
  static long merge(ChunkTable table, long index, int order, List<long[]> prepared) {
    return order >= CHUNK_SHIFT ? mergeChunks(table, index, order, prepared) : mergeInChunk(table, index, order, prepared);
  }

  private static void addIf(List<long[]> blocks, boolean prepared, long index, int order) {
    if (prepared) {
      blocks.add(new long[] {index, order});
    }
  }

  private static long mergeChunks(ChunkTable table, long index, int order, List<long[]> partsPrepared) {
    long first = index >>> CHUNK_SHIFT;
    long end = first + (1L << (order - CHUNK_SHIFT));
    boolean prepared = true;
    long parts = 0;
    for (long c = first; c < end; c++) {
      Object slot = table.get(c);
      if (slot instanceof HugeFolio h && h.isLive()) {
        if (h.order >= order) {
          throw new IllegalStateException("page " + index + " already in a folio of order " + h.order);
        }
        prepared &= h.prepared();
        addIf(partsPrepared, h.prepared(), h.start, h.order);
        parts++;
        c = h.endChunk() - 1;
      } else if (slot instanceof SmallChunk sc && sc.isCanonical()) {
        // One of the shared full chunks: folios of one order, one prepared state (a split gigabyte's).
        prepared &= sc.prepared(0);
        addIf(partsPrepared, sc.prepared(0), c << CHUNK_SHIFT, CHUNK_SHIFT);
        parts += SmallChunk.PAGES >> sc.orderAt(0);
      } else if (slot instanceof SmallChunk sc && sc.present == SmallChunk.PAGES) {
        for (int off = 0; off < SmallChunk.PAGES; off += 1 << sc.orderAt(off)) {
          prepared &= sc.prepared(off);
          addIf(partsPrepared, sc.prepared(off), (c << CHUNK_SHIFT) + off, sc.orderAt(off));
          parts++;
        }
      } else {
        throw new IllegalStateException("cannot merge: pages of chunk at " + (c << CHUNK_SHIFT) + " are missing");
      }
    }
    HugeFolio merged = new HugeFolio(index, order, HugeFolio.LIVE, prepared);
    for (long c = first; c < end; c++) {
      table.set(c, merged);
    }
    return 1 - parts;
  }

  private static long mergeInChunk(ChunkTable table, long index, int order, List<long[]> partsPrepared) {
    long chunk = index >>> CHUNK_SHIFT;
    Object slot = table.get(chunk);
    if (slot instanceof HugeFolio h && h.isLive()) {
      throw new IllegalStateException("page " + index + " already in a folio of order " + h.order);
    }
    if (!(slot instanceof SmallChunk sc)) {
      throw new IllegalStateException("cannot merge: page " + index + " is missing");
    }
    int lo = (int) (index & CHUNK_MASK);
    int n = 1 << order;
    boolean prepared = true;
    long parts = 0;
    for (int off = lo; off < lo + n; ) {
      int o = sc.orderAt(off);
      if (o < 0) {
        throw new IllegalStateException("cannot merge: page " + (index + off - lo) + " is missing");
      }
      if (o >= order) {
        throw new IllegalStateException("page " + index + " already in a folio of order " + o);
      }
      prepared &= sc.prepared(off);
      addIf(partsPrepared, sc.prepared(off), index + off - lo, o);
      parts++;
      off += 1 << o;
    }
    table.set(chunk, SmallChunk.with(sc, lo, n, SmallChunk.encode(order, prepared), 0));
    return 1 - parts;
  }

  private static void requireAbove(int order, int newOrder, long index) {
    if (newOrder >= order) {
      throw new IllegalStateException("folio at page " + index + " has order " + order + ", cannot split to " + newOrder);
    }
  }
}
