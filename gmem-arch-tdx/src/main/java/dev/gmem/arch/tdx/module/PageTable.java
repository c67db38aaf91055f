package dev.gmem.arch.tdx.module;

import java.util.HashMap;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.BiConsumer;

/**
 * A map from page number (a GFN, a page index) to a value, laid out as the TDX module's own
 * tables are: one 512-slot leaf per 2 MiB of page numbers, created on first store. A TD's pages
 * come in runs, so a run's stores hit the leaf the last one used, without hashing or boxing; a
 * {@code HashMap<Long, …>} keyed by 4 KiB-aligned GPAs hashed a 1 MiB image into 16 buckets
 * ({@code Long.hashCode} keeps only the low 32 bits, and HashMap's spread only folds in bits 16 and
 * up) and spent a third of a measured populate treeifying them. Not thread-safe: the TD's module
 * model serialises.
 */
final class PageTable<V> {
  private static final int BITS = 9;
  private static final int FANOUT = 1 << BITS;

  private final Map<Long, Object[]> leaves = new HashMap<>();
  private long lastLeaf = -1;
  private Object[] last;
  private long size;

  @SuppressWarnings("unchecked")
  V get(long pfn) {
    Object[] leaf = leaf(pfn >>> BITS, false);
    return leaf == null ? null : (V) leaf[(int) (pfn & (FANOUT - 1))];
  }

  /** Stores {@code value} (null removes); returns the previous value. */
  @SuppressWarnings("unchecked")
  V put(long pfn, V value) {
    Object[] leaf = leaf(pfn >>> BITS, value != null);
    if (leaf == null) {
      return null;
    }
    int i = (int) (pfn & (FANOUT - 1));
    V old = (V) leaf[i];
    leaf[i] = value;
    size += (value != null ? 1 : 0) - (old != null ? 1 : 0);
    return old;
  }

  V remove(long pfn) {
    return put(pfn, null);
  }

  long size() {
    return size;
  }

  boolean isEmpty() {
    return size == 0;
  }

  /** Every entry, by page number. */
  @SuppressWarnings("unchecked")
  void forEach(BiConsumer<Long, V> action) {
    for (Map.Entry<Long, Object[]> e : new TreeMap<>(leaves).entrySet()) {
      Object[] leaf = e.getValue();
      for (int i = 0; i < FANOUT; i++) {
        if (leaf[i] != null) {
          action.accept((e.getKey() << BITS) | i, (V) leaf[i]);
        }
      }
    }
  }

  /** Moves every entry of {@code source} here (overwriting), leaving {@code source} empty. */
  void takeFrom(PageTable<V> source) {
    source.forEach(this::put);
    source.leaves.clear();
    source.last = null;
    source.lastLeaf = -1;
    source.size = 0;
  }

  private Object[] leaf(long key, boolean create) {
    if (key == lastLeaf) {
      return last;
    }
    Object[] leaf = leaves.get(key);
    if (leaf == null) {
      if (!create) {
        return null;
      }
      leaf = new Object[FANOUT];
      leaves.put(key, leaf);
    }
    lastLeaf = key;
    last = leaf;
    return leaf;
  }
}
