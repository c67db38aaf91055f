package dev.gmem.core.filemap;

/**
 * The transient references of freshly allocated folios, like the kernel's per-CPU LRU add batches:
 * a new folio is held here (one extra reference) until the batch fills and drains itself, or until
 * a conversion that finds unexpected references drains it once ({@code lru_add_drain_all}) and
 * checks again. Small and fixed-size, so the fault path pays one short critical section per new
 * folio and nothing per access.
 */
public final class LruBatch {
  /** {@code FOLIO_BATCH_SIZE}. */
  public static final int CAPACITY = 31;

  private final long[] indices = new long[CAPACITY];
  private int size;

  /** Holds the new folio at {@code index}; drains first when full. */
  public synchronized void add(long index) {
    if (size == CAPACITY) {
      size = 0;
    }
    indices[size++] = index;
  }

  /**
   * Holds the {@code count} new folios of {@code 2^order} pages from {@code start}, as that many
   * {@link #add} calls would (the batch then holds the last of them), in one critical section.
   */
  public synchronized void addAll(long start, int order, long count) {
    long i = 0;
    if (size + count > CAPACITY) {
      // The batch fills, then drains every CAPACITY adds: only the last `keep` folios stay.
      long rest = count - (CAPACITY - size);
      long keep = rest % CAPACITY == 0 ? CAPACITY : rest % CAPACITY;
      size = 0;
      i = count - keep;
    }
    for (; i < count; i++) {
      indices[size++] = start + (i << order);
    }
  }

  /** The first held folio index in {@code [start, end)}, or -1. */
  public synchronized long first(long start, long end) {
    long best = -1;
    for (int i = 0; i < size; i++) {
      long x = indices[i];
      if (x >= start && x < end && (best < 0 || x < best)) {
        best = x;
      }
    }
    return best;
  }

  /** Drops every transient reference. */
  public synchronized void drain() {
    size = 0;
  }

  /** Forgets folios in {@code [start, end)} that left the filemap. */
  public synchronized void forget(long start, long end) {
    int w = 0;
    for (int i = 0; i < size; i++) {
      if (indices[i] < start || indices[i] >= end) {
        indices[w++] = indices[i];
      }
    }
    size = w;
  }

  public synchronized int size() {
    return size;
  }
}
