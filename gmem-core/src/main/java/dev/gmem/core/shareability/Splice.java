package dev.gmem.core.shareability;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.Shareability;
import java.util.Arrays;

/**
 * Builds the next {@link State} for "pages [a, b) become t" by path copying.
 *
 * <p>The boundaries with start in [a, b] are replaced by at most two new ones. Bottom-up, each level
 * rebuilds the nodes between the left and the right path from the prefix of the left node, the
 * nodes produced by the level below and the suffix of the right node; everything strictly between
 * the two paths is dropped unvisited. A level that would fall below the minimum fill absorbs a
 * neighbour (possibly a cousin). Cost: O(height × node size), independent of the number of runs
 * replaced, plus the accounting walk over the replaced runs.
 *
 * <p>Scratch space is owned by the store and reused: only the single writer (holding the inode's
 * exclusive lock) ever runs a splice.
 */
final class Splice {

  private final Shape shape;
  private final AllocationFailureInjector injector;
  private final long[] keys;
  private final Node[] kids;
  private final Node[] out = new Node[8];
  private int size;
  private Cursor left = new Cursor(1);
  private Cursor right = new Cursor(1);

  Splice(Shape shape, AllocationFailureInjector injector) {
    this.shape = shape;
    this.injector = injector;
    int cap = 3 * Math.max(shape.leafMax, shape.branchMax) + 8;
    this.keys = new long[cap];
    this.kids = new Node[cap];
  }

  State apply(State st, long nrPages, long a, long b, Shareability t) {
    if (left.capacity() <= st.height || right.capacity() <= st.height) {
      alloc();
      left = new Cursor(st.height + 8);
      alloc();
      right = new Cursor(st.height + 8);
    }
    alloc();
    long[] pages = st.pages.clone();
    long removed = account(st, a, b, pages);
    pages[t.ordinal()] += b - a;

    left.seek(st, a);
    right.seek(st, b);
    long p = left.entry();
    long q = right.entry();
    boolean keepP = Entries.start(p) < a;
    Shareability before = a == 0 ? null : keepP ? Entries.value(p) : valueAt(st, a - 1);
    int fresh = 0;

    size = 0;
    Node l = left.nodes[0];
    Node r = right.nodes[0];
    appendKeys(l, 0, left.idx[0] + (keepP ? 1 : 0));
    if (before != t) {
      keys[size++] = Entries.pack(a, t);
      fresh++;
    }
    if (b < nrPages && Entries.value(q) != t) {
      keys[size++] = Entries.pack(b, Entries.value(q));
      fresh++;
    }
    appendKeys(r, right.idx[0] + 1, r.size());
    int top = st.height;
    if (top > 0 && size < shape.leafMin) {
      absorb(0, false);
    }
    int count = emit(true);
    for (int h = 1; h <= top; h++) {
      size = 0;
      l = left.nodes[h];
      r = right.nodes[h];
      appendChildren(l, 0, left.idx[h]);
      appendOut(count);
      appendChildren(r, right.idx[h] + 1, r.size());
      if (h < top && size < shape.branchMin) {
        absorb(h, true);
      }
      count = emit(false);
    }
    int height = top;
    while (count > 1) {
      size = 0;
      appendOut(count);
      count = emit(false);
      height++;
    }
    Node root = out[0];
    Arrays.fill(out, null);
    while (!root.isLeaf() && root.size() == 1) {
      root = root.children[0];
      height--;
    }
    alloc();
    return new State(root, height, st.ranges - removed + fresh, pages, st.version + 2);
  }

  /**
   * Subtracts the pages of [a, b) from their current values and counts the boundaries with start
   * in [a, b], which the splice removes. O(runs touched).
   */
  private long account(State st, long a, long b, long[] pages) {
    Cursor w = left;
    w.seek(st, a);
    long removed = 0;
    for (;;) {
      long e = w.entry();
      long s = Entries.start(e);
      if (s >= a) {
        removed++;
      }
      boolean more = w.next();
      long nextStart = more ? Entries.start(w.entry()) : Long.MAX_VALUE;
      long runStart = Math.max(s, a);
      long runEnd = Math.min(nextStart, b);
      if (runEnd > runStart) {
        pages[Entries.ordinal(e)] -= runEnd - runStart;
      }
      if (!more || nextStart > b) {
        return removed;
      }
    }
  }

  static Shareability valueAt(State st, long index) {
    long key = Entries.probe(index);
    Node n = st.root;
    while (!n.isLeaf()) {
      n = n.children[n.floor(key)];
    }
    return Entries.value(n.keys[n.floor(key)]);
  }

  /** Pulls a whole neighbour of the span at height {@code h} into the buffer to restore minimum fill. */
  private void absorb(int h, boolean branch) {
    if (left.moveLeft(h)) {
      Node nb = left.nodes[h];
      int n = nb.size();
      System.arraycopy(keys, 0, keys, n, size);
      System.arraycopy(nb.keys, 0, keys, 0, n);
      if (branch) {
        System.arraycopy(kids, 0, kids, n, size);
        System.arraycopy(nb.children, 0, kids, 0, n);
      }
      size += n;
    } else if (right.moveRight(h)) {
      Node nb = right.nodes[h];
      if (branch) {
        appendChildren(nb, 0, nb.size());
      } else {
        appendKeys(nb, 0, nb.size());
      }
    }
    // Neither: the span is the whole level, whose single result becomes (part of) the root.
  }

  /** Cuts the buffer into as few nodes as fit, evenly filled, into {@code out}. */
  private int emit(boolean leaf) {
    if (size == 0) {
      throw new IllegalStateException("internal: empty level");
    }
    int max = shape.max(leaf);
    int c = (size + max - 1) / max;
    int base = size / c;
    int extra = size % c;
    int pos = 0;
    for (int i = 0; i < c; i++) {
      int len = base + (i < extra ? 1 : 0);
      alloc();
      long[] k = Arrays.copyOfRange(keys, pos, pos + len);
      Node[] ch = null;
      if (!leaf) {
        alloc();
        ch = Arrays.copyOfRange(kids, pos, pos + len);
      }
      alloc();
      out[i] = new Node(k, ch);
      pos += len;
    }
    if (!leaf) {
      Arrays.fill(kids, 0, size, null); // do not pin superseded versions
    }
    return c;
  }

  private void appendKeys(Node n, int from, int to) {
    int len = to - from;
    if (len > 0) {
      System.arraycopy(n.keys, from, keys, size, len);
      size += len;
    }
  }

  private void appendChildren(Node n, int from, int to) {
    int len = to - from;
    if (len > 0) {
      System.arraycopy(n.keys, from, keys, size, len);
      System.arraycopy(n.children, from, kids, size, len);
      size += len;
    }
  }

  private void appendOut(int count) {
    for (int i = 0; i < count; i++) {
      keys[size] = out[i].firstKey();
      kids[size] = out[i];
      size++;
    }
  }

  private void alloc() {
    if (injector.shouldFail()) {
      throw new GmemException(Errno.ENOMEM, "cannot allocate shareability tracking (injected)");
    }
  }
}
