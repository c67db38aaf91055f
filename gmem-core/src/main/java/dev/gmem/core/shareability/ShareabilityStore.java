package dev.gmem.core.shareability;

import dev.gmem.api.Shareability;
import dev.gmem.api.ShareabilityRange;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * The shareability of every page of an inode: a range map over page indices {@code [0, nrPages)}
 * that always covers the whole size, with adjacent equal runs merged (upstream:
 * {@code gmem_inode.attributes}, a maple tree under the invalidate lock with RCU readers).
 *
 * <h2>Representation</h2>
 * A persistent (copy-on-write) B+-tree of run boundaries. Each boundary is one packed {@code long}
 * ({@code start << 2 | shareability}); leaves are exact-size {@code long[]} of 16..64 boundaries,
 * branches hold 8..32 children. An update copies only the root-to-leaf paths it touches, so it costs
 * O(log runs + runs replaced) and memory stays around 9–10 bytes per run (see {@link #estimatedBytes()}).
 *
 * <h2>Concurrency</h2>
 * Readers are lock-free and wait-free: every read method loads one immutable published version and
 * answers from it alone, so a reader never sees a torn state and {@link #ranges} is an atomic
 * snapshot. Writers ({@link #prepare}, {@link Update#commit()}, {@link Update#abort()},
 * {@link #set}) must be serialised by the caller — the inode's invalidate lock held exclusively.
 * {@link #sequence()} changes on every commit, for the {@code mmu_invalidate_retry} pattern: read
 * the sequence, read the state, do the work, and redo it if the sequence moved.
 *
 * <h2>Two-phase updates</h2>
 * {@link #prepare} builds the complete next version (all allocation happens here and may fail with
 * {@code ENOMEM}); {@link Update#commit()} only publishes it, allocating nothing and never failing.
 */
public final class ShareabilityStore {

  private final long nrPages;
  private final Splice splice;
  private volatile State state;
  /** Writer-side only (serialised by the caller's lock). */
  private Update pending;

  /**
   * A store whose every page starts as {@code initial}.
   *
   * @param nrPages number of pages, {@code 1 .. 2^52}
   */
  public ShareabilityStore(long nrPages, Shareability initial) {
    this(nrPages, initial, AllocationFailureInjector.NEVER);
  }

  /**
   * Like {@link #ShareabilityStore(long, Shareability)}, with a fault-injection hook consulted before
   * each allocation of {@link #prepare}.
   */
  public ShareabilityStore(long nrPages, Shareability initial, AllocationFailureInjector injector) {
    this(nrPages, initial, injector, Shape.DEFAULT);
  }

  ShareabilityStore(long nrPages, Shareability initial, AllocationFailureInjector injector, Shape shape) {
    if (nrPages <= 0 || nrPages > Entries.MAX_PAGES) {
      throw new IllegalArgumentException("nrPages out of range: " + nrPages);
    }
    Objects.requireNonNull(initial, "initial");
    this.nrPages = nrPages;
    this.splice = new Splice(shape, Objects.requireNonNull(injector, "injector"));
    long[] pages = new long[Shareability.values().length];
    pages[initial.ordinal()] = nrPages;
    Node root = new Node(new long[] {Entries.pack(0, initial)}, null);
    this.state = new State(root, 0, 1, pages, 0);
  }

  /** Number of pages covered. */
  public long nrPages() {
    return nrPages;
  }

  /** The shareability of page {@code index}. O(log runs), lock-free, allocation-free. */
  public Shareability get(long index) {
    checkIndex(index);
    return Splice.valueAt(state, index);
  }

  /**
   * A version number that changes on every committed update (it only grows, and is always even:
   * publication is a single atomic step, so there is no "write in progress" state to observe).
   */
  public long sequence() {
    return state.version;
  }

  /**
   * The maximal runs intersecting {@code [start, end)}, clipped to it, in index order — one atomic
   * snapshot. O(log runs + result).
   */
  public List<ShareabilityRange> ranges(long start, long end) {
    checkRange(start, end);
    State st = state;
    Cursor c = Cursor.at(st, start);
    // Sized for the runs the range can hold at most: a fragmented store's whole-file conversion
    // lists hundreds of thousands, and regrowing the list was a fifth of its cost.
    List<ShareabilityRange> result = new ArrayList<>((int) Math.min(Math.min(st.ranges, end - start), 1 << 20));
    for (;;) {
      long e = c.entry();
      boolean more = c.next();
      long runEnd = more ? Entries.start(c.entry()) : nrPages;
      result.add(new ShareabilityRange(Math.max(Entries.start(e), start), Math.min(runEnd, end), Entries.value(e)));
      if (!more || runEnd >= end) {
        return result;
      }
    }
  }

  /** The maximal run holding page {@code index}, not clipped. O(log runs). */
  public ShareabilityRange runAt(long index) {
    checkIndex(index);
    Cursor c = Cursor.at(state, index);
    long e = c.entry();
    long end = c.next() ? Entries.start(c.entry()) : nrPages;
    return new ShareabilityRange(Entries.start(e), end, Entries.value(e));
  }

  /** Whether every page of {@code [start, end)} is {@code s}. O(log runs), allocation-free. */
  public boolean isUniform(long start, long end, Shareability s) {
    checkRange(start, end);
    Objects.requireNonNull(s, "s");
    return isUniform(state, start, end, s);
  }

  private boolean isUniform(State st, long start, long end, Shareability s) {
    long key = Entries.probe(start);
    long bound = Long.MAX_VALUE; // first entry after the subtree we descend into
    Node n = st.root;
    for (;;) {
      int i = n.floor(key);
      if (i + 1 < n.size()) {
        bound = n.keys[i + 1];
      }
      if (n.isLeaf()) {
        long runEnd = bound == Long.MAX_VALUE ? nrPages : Entries.start(bound);
        return Entries.value(n.keys[i]) == s && runEnd >= end;
      }
      n = n.children[i];
    }
  }

  /** Number of pages that are {@code s}. O(1). */
  public long countPages(Shareability s) {
    return state.pages[s.ordinal()];
  }

  /** Number of maximal runs. O(1). */
  public int rangeCount() {
    return Math.toIntExact(state.ranges);
  }

  /**
   * Approximate heap footprint of the current version (compressed-oops object layout). Walks the
   * tree: O(runs / 16), meant for diagnostics and reports, not hot paths.
   */
  public long estimatedBytes() {
    State st = state;
    return 40 + 40 + bytes(st.root);
  }

  private static long bytes(Node n) {
    long b = n.bytes();
    if (!n.isLeaf()) {
      for (Node c : n.children) {
        b += bytes(c);
      }
    }
    return b;
  }

  /**
   * Prepares "pages {@code [start, end)} become {@code target}": builds the whole next version,
   * which is all the allocation the update needs. Nothing is visible until {@link Update#commit()}.
   *
   * <p>Only one update may be prepared at a time; it must be committed or aborted before the next
   * {@code prepare}. The caller holds the exclusive lock from here until commit or abort.
   *
   * @throws dev.gmem.api.GmemException {@code ENOMEM} when an allocation fails (here: when the
   *     injector says so); the store is then unchanged and no update is pending
   * @throws IllegalStateException if another update is pending
   * @throws IllegalArgumentException if the range is empty or outside {@code [0, nrPages)}
   */
  public Update prepare(long start, long end, Shareability target) {
    checkRange(start, end);
    Objects.requireNonNull(target, "target");
    if (pending != null) {
      throw new IllegalStateException("another shareability update is prepared");
    }
    State base = state;
    boolean changes = !isUniform(base, start, end, target);
    State next = splice.apply(base, nrPages, start, end, target);
    Update u = new Update(this, base, next, start, end, target, changes);
    pending = u;
    return u;
  }

  /** {@code prepare(start, end, target).commit()}. */
  public void set(long start, long end, Shareability target) {
    prepare(start, end, target).commit();
  }

  private void commit(Update u) {
    if (u.finished) {
      throw new IllegalStateException("update already committed or aborted");
    }
    if (pending != u || state != u.base) {
      throw new IllegalStateException("stale update: the store changed since it was prepared");
    }
    state = u.next;
    pending = null;
    u.finished = true;
  }

  private void abort(Update u) {
    if (u.finished) {
      return;
    }
    if (pending == u) {
      pending = null;
    }
    u.finished = true;
  }

  private void checkIndex(long index) {
    if (index < 0 || index >= nrPages) {
      throw new IndexOutOfBoundsException("page " + index + " outside [0, " + nrPages + ")");
    }
  }

  private void checkRange(long start, long end) {
    if (start < 0 || end <= start || end > nrPages) {
      throw new IllegalArgumentException("range [" + start + ", " + end + ") not a non-empty part of [0, " + nrPages + ")");
    }
  }

  /** Test support: the current version, for structural checks. */
  State currentState() {
    return state;
  }

  /**
   * A prepared update. {@link #commit()} publishes it and cannot fail for lack of memory;
   * {@link #abort()} discards it. Exactly one of them takes effect.
   */
  public static final class Update {

    private final ShareabilityStore store;
    private final State base;
    private final State next;
    private final long start;
    private final long end;
    private final Shareability target;
    private final boolean changes;
    private boolean finished;

    private Update(ShareabilityStore store, State base, State next, long start, long end, Shareability target, boolean changes) {
      this.store = store;
      this.base = base;
      this.next = next;
      this.start = start;
      this.end = end;
      this.target = target;
      this.changes = changes;
    }

    /** First page of the update. */
    public long start() {
      return start;
    }

    /** End (exclusive) of the update. */
    public long end() {
      return end;
    }

    /** The shareability the range gets. */
    public Shareability target() {
      return target;
    }

    /** Whether committing changes any page (false when the range already had the target). */
    public boolean changes() {
      return changes;
    }

    /**
     * Publishes the update atomically: readers see either all of it or none of it. Allocates
     * nothing. {@link ShareabilityStore#sequence()} changes, even for an update that
     * {@linkplain #changes() changes} no page.
     *
     * @throws IllegalStateException if the update was already committed or aborted, or is stale
     *     (the store was changed by some other means after {@code prepare}) — programming errors
     */
    public void commit() {
      store.commit(this);
    }

    /** Discards the update. A no-op once committed or aborted, so it is safe in {@code finally}. */
    public void abort() {
      store.abort(this);
    }
  }
}
