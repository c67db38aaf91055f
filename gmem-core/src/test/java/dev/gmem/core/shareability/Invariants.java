package dev.gmem.core.shareability;

import dev.gmem.api.Shareability;

/** Structural checks of one {@link State}, used by tests after every operation. */
final class Invariants {

  private Invariants() {}

  static void check(State st, long nrPages, Shape shape) {
    long[] pages = new long[Shareability.values().length];
    long[] acc = {0, -1, -1}; // ranges, previous entry, leaf depth seen
    long first = walk(st.root, st.height, true, shape, nrPages, pages, acc);
    if (Entries.start(first) != 0) {
      throw new AssertionError("first run starts at " + Entries.start(first));
    }
    // The last run ends at nrPages.
    long last = acc[1];
    pages[Entries.ordinal(last)] += nrPages - Entries.start(last);
    if (acc[0] != st.ranges) {
      throw new AssertionError("range count " + st.ranges + " but tree holds " + acc[0]);
    }
    for (int i = 0; i < pages.length; i++) {
      if (pages[i] != st.pages[i]) {
        throw new AssertionError("page count of " + Shareability.values()[i] + " is " + st.pages[i] + " but tree says " + pages[i]);
      }
    }
    if (!st.root.isLeaf() && st.root.size() < 2) {
      throw new AssertionError("branch root with one child");
    }
  }

  /** Returns the subtree's first key; accumulates pages of every run whose end is known. */
  private static long walk(Node n, int height, boolean root, Shape shape, long nrPages, long[] pages, long[] acc) {
    boolean leaf = height == 0;
    if (n.isLeaf() != leaf) {
      throw new AssertionError("leaf at wrong depth");
    }
    if (n.size() == 0 || n.size() > shape.max(leaf) || (!root && n.size() < shape.min(leaf))) {
      throw new AssertionError("node size " + n.size() + " outside bounds (leaf=" + leaf + ")");
    }
    if (leaf) {
      for (long e : n.keys) {
        long prev = acc[1];
        if (prev >= 0) {
          if (Entries.start(e) <= Entries.start(prev)) {
            throw new AssertionError("entries not increasing");
          }
          if (Entries.ordinal(e) == Entries.ordinal(prev)) {
            throw new AssertionError("adjacent runs equal at " + Entries.start(e));
          }
          pages[Entries.ordinal(prev)] += Entries.start(e) - Entries.start(prev);
        }
        if (Entries.start(e) >= nrPages) {
          throw new AssertionError("run starts past the end");
        }
        acc[1] = e;
        acc[0]++;
      }
      return n.keys[0];
    }
    if (n.children.length != n.keys.length) {
      throw new AssertionError("branch arrays differ in length");
    }
    for (int i = 0; i < n.size(); i++) {
      long f = walk(n.children[i], height - 1, false, shape, nrPages, pages, acc);
      if (f != n.keys[i]) {
        throw new AssertionError("separator key differs from child's first key");
      }
    }
    return n.keys[0];
  }
}
