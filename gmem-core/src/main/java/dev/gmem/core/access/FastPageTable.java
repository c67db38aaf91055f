package dev.gmem.core.access;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * The lock-free access path's page table for one inode: which pages an access of each
 * {@link Kind} may reach without the invalidate lock. An entry is installed by the slow path after
 * a fault of that kind succeeded (folio present, shareability and arch agree, no interceptor on
 * the inode), like a PTE after a page fault; {@link #zap} removes entries and {@link #kill} the whole
 * table, each followed by {@link Rcu#synchronize()} — the TLB shootdown — before the caller
 * changes anything an installed entry vouched for.
 *
 * <h2>Representation</h2>
 * Three bits per page. A file of up to 4 GiB has three flat arrays, one plane per kind (at most
 * 128 KiB each, 0.01% of the file together), so a lookup is one load of the plane and one of its
 * word, and a {@link #plane} can be held by a caller (a host mapping, a memslot binding) so that its
 * lookup is the word's load alone; its length is the file's bound. A larger one has leaves of 4096 pages
 * (three 512-byte planes, allocated on the first install in them) under a radix directory of
 * 512-way levels, like a page table: a 2^52-page file has five levels; untouched ranges cost nothing.
 *
 * <h2>Concurrency</h2>
 * {@link #isMapped} is lock-free and allocation-free and runs inside an {@link Rcu} read-side
 * section. {@link #install} runs with the invalidate lock held shared (concurrent installs merge by
 * atomic OR); {@link #zap} and {@link #kill} with it held exclusive.
 */
public final class FastPageTable {
  /** What an entry allows. */
  public enum Kind {
    /** A host access through a mapping (the mapping checks its own prot and bounds). */
    HOST,
    /** A guest access of the shared kind. */
    GUEST_SHARED,
    /** A guest access of the private kind (the folio is prepared). */
    GUEST_PRIVATE
  }

  private static final int LEAF_SHIFT = 12;
  private static final int WORDS_PER_PLANE = (1 << LEAF_SHIFT) / 64;
  /** A leaf's three planes are followed by one summary word per plane (64 words, one bit each). */
  private static final int LEAF_SUMMARY = 3 * WORDS_PER_PLANE;
  private static final int DIR_BITS = 9;
  private static final int DIR_MASK = (1 << DIR_BITS) - 1;
  private static final VarHandle WORD = MethodHandles.arrayElementVarHandle(long[].class);
  private static final VarHandle SLOT = MethodHandles.arrayElementVarHandle(Object[].class);

  /** Largest table kept flat: 4 GiB of 4 KiB pages. */
  private static final long FLAT_MAX_PAGES = 1L << 20;

  private final long nrPages;
  /**
   * Small tables: the planes by kind, {@link #planeWords} words each (bits past {@link #nrPages}
   * never set); never replaced, zeroed when killed, so that a plane a caller holds stays valid.
   */
  private final long[][] flat;
  private final int planeWords;
  /** {@link #flat}'s guest planes, null for a large table: one field load on the vCPU's hot path. */
  private final long[] sharedPlane;
  private final long[] privatePlane;
  /**
   * Small tables: per plane, one bit per word of {@link #flat} that may be non-zero ({@link #summaryWords}
   * words a plane), so that a zap visits only words that hold entries — a 1 GiB conversion of a file
   * whose accessors touched a few pages clears those words, not 12,288.
   */
  private final long[] summary;
  private final int summaryWords;
  private final int levels;
  /** Large tables: the radix directory, null once killed: every lookup misses from then on. */
  private Object[] root;
  /** Set by {@link #kill}; read by installers, which hold the invalidate lock like the killer. */
  private boolean killed;

  public FastPageTable(long nrPages) {
    this.nrPages = nrPages;
    this.planeWords = nrPages <= FLAT_MAX_PAGES ? (int) ((nrPages + 63) >>> 6) : 0;
    this.flat = nrPages <= FLAT_MAX_PAGES ? new long[Kind.values().length][planeWords] : null;
    this.sharedPlane = flat != null ? flat[Kind.GUEST_SHARED.ordinal()] : null;
    this.privatePlane = flat != null ? flat[Kind.GUEST_PRIVATE.ordinal()] : null;
    this.summaryWords = (planeWords + 63) >>> 6;
    this.summary = flat != null ? new long[Kind.values().length * summaryWords] : null;
    long leaves = ((nrPages - 1) >>> LEAF_SHIFT) + 1;
    int bits = 64 - Long.numberOfLeadingZeros(Math.max(1, leaves - 1));
    this.levels = Math.max(1, (bits + DIR_BITS - 1) / DIR_BITS);
    this.root = flat != null ? null : new Object[(int) (((leaves - 1) >>> (DIR_BITS * (levels - 1))) + 1)];
  }

  /** Whether an access of {@code kind} may reach page {@code page} now. Lock-free; misses are safe. */
  public boolean isMapped(long page, Kind kind) {
    long[][] f = flat;
    if (f != null) {
      return isMapped(f[kind.ordinal()], page);
    }
    Object[] dir = root;
    if (dir == null || Long.compareUnsigned(page, nrPages) >= 0) {
      return false;
    }
    long leaf = page >>> LEAF_SHIFT;
    for (int l = levels - 1; l > 0; l--) {
      dir = (Object[]) dir[(int) ((leaf >>> (DIR_BITS * l)) & DIR_MASK)];
      if (dir == null) {
        return false;
      }
    }
    long[] bits = (long[]) dir[(int) (leaf & DIR_MASK)];
    return bits != null && (bits[word(page, kind)] & (1L << page)) != 0;
  }

  /**
   * {@link #isMapped(long, Kind)} for a guest access, shared or private: on a flat table the
   * plane's field and its word, no enum ordinal or plane offset to load.
   */
  public boolean isGuestMapped(long page, boolean privateAccess) {
    long[] p = privateAccess ? privatePlane : sharedPlane;
    return p != null ? isMapped(p, page) : isMapped(page, privateAccess ? Kind.GUEST_PRIVATE : Kind.GUEST_SHARED);
  }

  /**
   * The flat plane of {@code kind}, for {@link #isMapped(long[], long)}; null for a large (radix)
   * table, whose lookups go through {@link #isMapped(long, Kind)}. The same array for the table's
   * life: {@link #zap} and {@link #kill} clear its bits in place.
   */
  public long[] plane(Kind kind) {
    return flat == null ? null : flat[kind.ordinal()];
  }

  /**
   * Whether {@code plane} (from {@link #plane}, or an empty array: never) maps {@code page}: one
   * compare against the plane's length, which bounds the file, and one load. Lock-free, inside an
   * {@link Rcu} read-side section.
   */
  public static boolean isMapped(long[] plane, long page) {
    return (page >>> 31) == 0 && isMapped(plane, (int) page); // beyond 2^31: past any plane's length
  }

  /**
   * {@link #isMapped(long[], long)} for a page index the caller knows to be below 2^31 (a flat
   * plane's file has at most 2^20 pages): the length compare is then the array's own bounds
   * check, one compare in all. The long form checks the range and comes here.
   */
  public static boolean isMapped(long[] plane, int page) {
    int w = page >>> 6;
    return w < plane.length && (plane[w] & (1L << page)) != 0;
  }

  /** Installs the entry for {@code page}: an access of {@code kind} just faulted it successfully. */
  public void install(long page, Kind kind) {
    if (killed || Long.compareUnsigned(page, nrPages) >= 0) {
      return;
    }
    long bit = 1L << page;
    if (flat != null) {
      int w = (int) (page >>> 6);
      long[] plane = flat[kind.ordinal()];
      if ((plane[w] & bit) == 0) {
        WORD.getAndBitwiseOr(plane, w, bit);
        markSummary(summary, kind.ordinal() * summaryWords + (w >>> 6), 1L << w);
      }
      return;
    }
    long[] bits = leaf(root, page >>> LEAF_SHIFT);
    int w = word(page, kind);
    if ((bits[w] & bit) == 0) {
      WORD.getAndBitwiseOr(bits, w, bit);
      markSummary(bits, LEAF_SUMMARY + kind.ordinal(), 1L << (w - kind.ordinal() * WORDS_PER_PLANE));
    }
  }

  /** Concurrent installs hold the invalidate lock shared, so they OR; zaps hold it exclusive. */
  private static void markSummary(long[] sum, int i, long bit) {
    if ((sum[i] & bit) == 0) {
      WORD.getAndBitwiseOr(sum, i, bit);
    }
  }

  /**
   * Removes every entry of pages {@code [start, end)}; returns whether there was one. If so, the
   * caller then {@link Rcu#synchronize}s. If not, no access can be using one: entries are
   * installed only under the invalidate lock held shared, which the caller holds exclusive, and
   * whoever removed the last ones waited for their readers then.
   */
  public boolean zap(long start, long end) {
    Object[] dir = root;
    end = Math.min(end, nrPages);
    if (killed || start >= end) {
      return false;
    }
    boolean any = false;
    if (flat != null) {
      for (Kind k : Kind.values()) {
        any |= clear(flat[k.ordinal()], 0, summary, k.ordinal() * summaryWords, start, end);
      }
      return any;
    }
    for (long leaf = start >>> LEAF_SHIFT; leaf <= (end - 1) >>> LEAF_SHIFT; leaf++) {
      long[] bits = existingLeaf(dir, leaf);
      if (bits == null) {
        leaf = nextLeafAfterHole(leaf);
        continue;
      }
      long base = leaf << LEAF_SHIFT;
      long s = Math.max(start, base) - base;
      long e = Math.min(end, base + (1L << LEAF_SHIFT)) - base;
      for (Kind k : Kind.values()) {
        any |= clear(bits, k.ordinal() * WORDS_PER_PLANE, bits, LEAF_SUMMARY + k.ordinal(), s, e);
      }
    }
    return any;
  }

  /** Removes every entry for good (eviction). Caller then {@link Rcu#synchronize}s. */
  public void kill() {
    killed = true;
    root = null;
    if (flat != null) {
      for (Kind k : Kind.values()) {
        clear(flat[k.ordinal()], 0, summary, k.ordinal() * summaryWords, 0, nrPages);
      }
    }
  }

  /**
   * Clears pages {@code [s, e)} (relative to the plane) of the plane at {@code plane} in
   * {@code bits}, visiting only the words the plane's summary ({@code sum} from {@code sumBase},
   * one bit per word) marks, and unmarking words left empty; returns whether a page had an entry.
   */
  private static boolean clear(long[] bits, int plane, long[] sum, int sumBase, long s, long e) {
    boolean any = false;
    long firstWord = s >>> 6;
    long lastWord = (e - 1) >>> 6;
    for (long sw = firstWord >>> 6; sw <= lastWord >>> 6; sw++) {
      long marks = sum[sumBase + (int) sw];
      long lo = sw << 6;
      if (lo < firstWord) {
        marks &= -1L << (firstWord - lo);
      }
      if (lastWord - lo < 63) {
        marks &= (2L << (lastWord - lo)) - 1;
      }
      while (marks != 0) {
        long wi = lo + Long.numberOfTrailingZeros(marks);
        marks &= marks - 1;
        long p = Math.max(s, wi << 6);
        long hi = Math.min(e, (wi << 6) + 64);
        long mask = (hi - p == 64 ? -1L : ((1L << (hi - p)) - 1)) << p;
        int w = plane + (int) wi;
        any |= (bits[w] & mask) != 0;
        long left = bits[w] & ~mask;
        WORD.setOpaque(bits, w, left);
        if (left == 0) {
          WORD.setOpaque(sum, sumBase + (int) sw, sum[sumBase + (int) sw] & ~(1L << wi));
        }
      }
    }
    return any;
  }

  private static int word(long page, Kind kind) {
    return kind.ordinal() * WORDS_PER_PLANE + (int) ((page >>> 6) & (WORDS_PER_PLANE - 1));
  }

  private long[] existingLeaf(Object[] dir, long leaf) {
    for (int l = levels - 1; l > 0; l--) {
      dir = (Object[]) SLOT.getAcquire(dir, (int) ((leaf >>> (DIR_BITS * l)) & DIR_MASK));
      if (dir == null) {
        return null;
      }
    }
    return (long[]) SLOT.getAcquire(dir, (int) (leaf & DIR_MASK));
  }

  /**
   * The last leaf of the smallest empty subtree holding {@code leaf}, so that a zap over a huge
   * sparse range skips it in one step.
   */
  private long nextLeafAfterHole(long leaf) {
    Object[] dir = root;
    for (int l = levels - 1; l > 0; l--) {
      Object next = SLOT.getAcquire(dir, (int) ((leaf >>> (DIR_BITS * l)) & DIR_MASK));
      if (next == null) {
        return leaf | ((1L << (DIR_BITS * l)) - 1);
      }
      dir = (Object[]) next;
    }
    return leaf;
  }

  private long[] leaf(Object[] dir, long leaf) {
    for (int l = levels - 1; l > 0; l--) {
      dir = (Object[]) slot(dir, (int) ((leaf >>> (DIR_BITS * l)) & DIR_MASK), () -> new Object[1 << DIR_BITS]);
    }
    return (long[]) slot(dir, (int) (leaf & DIR_MASK), () -> new long[Kind.values().length * (WORDS_PER_PLANE + 1)]);
  }

  private static Object slot(Object[] dir, int i, java.util.function.Supplier<Object> fresh) {
    Object v = SLOT.getAcquire(dir, i);
    if (v == null) {
      Object n = fresh.get();
      Object witness = SLOT.compareAndExchange(dir, i, (Object) null, n);
      v = witness == null ? n : witness;
    }
    return v;
  }
}
