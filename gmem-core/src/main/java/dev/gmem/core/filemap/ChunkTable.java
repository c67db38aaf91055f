package dev.gmem.core.filemap;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * A radix tree from chunk number (512 pages) to the chunk's slot: {@code null}, a
 * {@link SmallChunk} or a {@link HugeFolio}. Levels of 512 slots are created on first store and
 * never freed, like a page table; a 1 GiB file needs one level (2 KiB), 2^52 pages need five.
 *
 * <p>Slots are read with acquire and written with release/CAS semantics, so readers are lock-free.
 */
final class ChunkTable {

  static final int BITS = 9;
  static final int FANOUT = 1 << BITS;
  static final int MASK = FANOUT - 1;

  private static final VarHandle SLOT = MethodHandles.arrayElementVarHandle(Object[].class);

  /** Array levels from root to the level that holds chunk slots; at least one. */
  private final int levels;
  private final Object[] root;

  ChunkTable(long nrChunks) {
    int bits = 64 - Long.numberOfLeadingZeros(Math.max(1, nrChunks - 1));
    this.levels = Math.max(1, (bits + BITS - 1) / BITS);
    this.root = new Object[(int) (((nrChunks - 1) >>> (BITS * (levels - 1))) + 1)];
  }

  Object get(long chunk) {
    Object[] a = root;
    for (int l = levels - 1; l > 0; l--) {
      Object next = (Object) SLOT.getAcquire(a, index(chunk, l));
      if (next == null) {
        return null;
      }
      a = (Object[]) next;
    }
    return (Object) SLOT.getAcquire(a, (int) (chunk & MASK));
  }

  boolean compareAndSet(long chunk, Object expect, Object update) {
    return SLOT.compareAndSet(leaf(chunk), (int) (chunk & MASK), expect, update);
  }

  void set(long chunk, Object value) {
    SLOT.setRelease(leaf(chunk), (int) (chunk & MASK), value);
  }

  /** First chunk in {@code [from, to)} with a non-null slot, or -1. Skips empty subtrees. */
  long next(long from, long to) {
    return from >= to ? -1 : scan(root, levels - 1, 0, from, to);
  }

  private long scan(Object[] a, int level, long base, long from, long to) {
    int shift = BITS * level;
    for (int i = (int) ((from - base) >>> shift); i < a.length; i++) {
      long lo = base + ((long) i << shift);
      if (lo >= to) {
        return -1;
      }
      Object v = (Object) SLOT.getAcquire(a, i);
      if (v == null) {
        continue;
      }
      if (level == 0) {
        return lo;
      }
      long r = scan((Object[]) v, level - 1, lo, Math.max(from, lo), to);
      if (r >= 0) {
        return r;
      }
    }
    return -1;
  }

  /** Heap bytes of the directory arrays (compressed oops). */
  long directoryBytes() {
    return bytes(root, levels - 1);
  }

  private static long bytes(Object[] a, int level) {
    long b = (16 + 4L * a.length + 7) & ~7L;
    if (level > 0) {
      for (int i = 0; i < a.length; i++) {
        Object v = (Object) SLOT.getAcquire(a, i);
        if (v != null) {
          b += bytes((Object[]) v, level - 1);
        }
      }
    }
    return b;
  }

  private static int index(long chunk, int level) {
    return (int) ((chunk >>> (BITS * level)) & MASK);
  }

  /** The slot array for {@code chunk}, creating missing levels (racing creators agree by CAS). */
  private Object[] leaf(long chunk) {
    Object[] a = root;
    for (int l = levels - 1; l > 0; l--) {
      int i = index(chunk, l);
      Object next = (Object) SLOT.getAcquire(a, i);
      if (next == null) {
        Object[] fresh = new Object[FANOUT];
        Object witness = (Object) SLOT.compareAndExchange(a, i, (Object) null, (Object) fresh);
        next = witness == null ? fresh : witness;
      }
      a = (Object[]) next;
    }
    return a;
  }
}
