package dev.gmem.core.filemap;

import static dev.gmem.core.filemap.Filemap.CHUNK_MASK;
import static dev.gmem.core.filemap.Filemap.CHUNK_SHIFT;

/**
 * Lock-free insertion into the chunk table ({@code filemap_add_folio}): small folios by one CAS
 * of their chunk, huge folios by reserving every chunk they cover and then going live in one
 * write. Linearizable against each other and against lookups; see {@link Filemap}. Arguments are
 * checked by {@link Filemap}, which also keeps the counts.
 */
final class FolioInsert {
  private static final int SPIN_BEFORE_YIELD = 256;

  private FolioInsert() {}

  /** Adds one folio; false (nothing changed) if a page of it is present. */
  static boolean add(ChunkTable table, long index, int order) {
    return order < CHUNK_SHIFT ? addSmall(table, index, order) : addHuge(table, index, order);
  }

  /** Adds the free folios of {@code order} in {@code [off, off + n)} of one chunk in one CAS; returns the pages added. */
  static int addSmallRun(ChunkTable table, long chunk, int off, int n, int order) {
    for (;;) {
      Object slot = settled(table, chunk);
      if (slot instanceof HugeFolio) {
        return 0;
      }
      SmallChunk cur = (SmallChunk) slot;
      SmallChunk next = SmallChunk.withFolios(cur, off, n, order);
      if (next == cur) {
        return 0;
      }
      if (table.compareAndSet(chunk, cur, next)) {
        return next.present - (cur == null ? 0 : cur.present);
      }
    }
  }

  /**
   * Adds an order-0 folio at each page {@code off + k} of one chunk whose bit {@code k} is set in
   * {@code want} and that is free, in one CAS; returns the mask of those added — exact, so each
   * racer of a page knows whether its own folio went in.
   */
  static long addSmallPages(ChunkTable table, long chunk, int off, long want) {
    for (;;) {
      Object slot = settled(table, chunk);
      if (slot instanceof HugeFolio) {
        return 0;
      }
      SmallChunk cur = (SmallChunk) slot;
      long free = cur == null ? want : cur.freeMask(off, want);
      if (free == 0) {
        return 0;
      }
      if (table.compareAndSet(chunk, cur, SmallChunk.withPages(cur, off, free))) {
        return free;
      }
    }
  }

  private static boolean addSmall(ChunkTable table, long index, int order) {
    long chunk = index >>> CHUNK_SHIFT;
    int off = (int) (index & CHUNK_MASK);
    int n = 1 << order;
    byte value = SmallChunk.encode(order, false);
    for (;;) {
      Object slot = settled(table, chunk);
      if (slot instanceof HugeFolio) {
        return false;
      }
      SmallChunk cur = (SmallChunk) slot;
      if (cur != null && !cur.isFree(off, n)) {
        return false;
      }
      if (table.compareAndSet(chunk, cur, SmallChunk.with(cur, off, n, value, n))) {
        return true;
      }
    }
  }

  /**
   * Reserves every covered slot in ascending order (so two huge adds never wait on each other in a
   * cycle), then goes live in one write; on a conflict, releases what it reserved.
   */
  private static boolean addHuge(ChunkTable table, long index, int order) {
    HugeFolio h = new HugeFolio(index, order, HugeFolio.RESERVING, false);
    long first = h.firstChunk();
    long end = h.endChunk();
    for (long c = first; c < end; c++) {
      for (;;) {
        Object slot = table.get(c);
        if (slot == null) {
          if (table.compareAndSet(c, null, h)) {
            break;
          }
          continue;
        }
        if (slot instanceof HugeFolio other && !other.isLive()) {
          awaitSettled(table, c, other);
          continue;
        }
        h.setState(HugeFolio.DEAD);
        for (long k = first; k < c; k++) {
          table.compareAndSet(k, h, null);
        }
        return false;
      }
    }
    h.setState(HugeFolio.LIVE);
    return true;
  }

  /** Waits for another add's reservation of {@code chunk} to go live or be released. */
  /**
   * The chunk's slot once no huge folio is settling in it: a live {@link HugeFolio} (its pages
   * are present), or its small folios ({@link SmallChunk}, null for none).
   */
  private static Object settled(ChunkTable table, long chunk) {
    for (;;) {
      Object slot = table.get(chunk);
      if (!(slot instanceof HugeFolio h) || h.isLive()) {
        return slot;
      }
      awaitSettled(table, chunk, h);
    }
  }

  private static void awaitSettled(ChunkTable table, long chunk, HugeFolio h) {
    for (int spins = 0; table.get(chunk) == h && !h.isLive(); spins++) {
      if (spins < SPIN_BEFORE_YIELD) {
        Thread.onSpinWait();
      } else {
        Thread.yield();
      }
    }
  }
}
