package dev.gmem.core.shareability;

/**
 * An immutable B+-tree node. Leaves hold packed run boundaries ({@link Entries}); branches hold, for
 * each child, the first packed entry of its subtree. Arrays are sized exactly because nodes are
 * never modified after construction: an update copies the touched path instead.
 */
final class Node {

  final long[] keys;
  /** {@code null} in leaves. */
  final Node[] children;

  Node(long[] keys, Node[] children) {
    this.keys = keys;
    this.children = children;
  }

  boolean isLeaf() {
    return children == null;
  }

  int size() {
    return keys.length;
  }

  long firstKey() {
    return keys[0];
  }

  /**
   * Index of the last key {@code <= key}. Callers only descend where the first key qualifies (the
   * tree's first entry starts at page 0), so the result is never negative.
   */
  int floor(long key) {
    long[] k = keys;
    int lo = 0;
    int hi = k.length - 1;
    while (lo < hi) {
      int mid = (lo + hi + 1) >>> 1;
      if (k[mid] <= key) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    return lo;
  }

  /** Approximate heap footprint of this node alone, assuming compressed oops. */
  long bytes() {
    long b = 24 + align(16 + 8L * keys.length);
    if (children != null) {
      b += align(16 + 4L * children.length);
    }
    return b;
  }

  static long align(long bytes) {
    return (bytes + 7) & ~7L;
  }
}
