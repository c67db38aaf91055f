package dev.gmem.core.shareability;

/**
 * A root-to-leaf path through one {@link State}: {@code nodes[h]} is the node at height
 * {@code h}, {@code idx[h]} the position taken in it (an entry in the leaf, a child above).
 */
final class Cursor {

  final Node[] nodes;
  final int[] idx;
  private int height;

  Cursor(int capacity) {
    nodes = new Node[capacity];
    idx = new int[capacity];
  }

  static Cursor at(State state, long index) {
    Cursor c = new Cursor(state.height + 1);
    c.seek(state, index);
    return c;
  }

  int capacity() {
    return nodes.length;
  }

  /** Positions on the run containing page {@code index}. */
  void seek(State state, long index) {
    long key = Entries.probe(index);
    height = state.height;
    Node n = state.root;
    for (int h = height; ; h--) {
      nodes[h] = n;
      int i = n.floor(key);
      idx[h] = i;
      if (h == 0) {
        return;
      }
      n = n.children[i];
    }
  }

  long entry() {
    return nodes[0].keys[idx[0]];
  }

  /** Advances to the next entry; returns false (staying put) at the last one. */
  boolean next() {
    if (idx[0] + 1 < nodes[0].size()) {
      idx[0]++;
      return true;
    }
    int j = 1;
    while (j <= height && idx[j] + 1 >= nodes[j].size()) {
      j++;
    }
    if (j > height) {
      return false;
    }
    idx[j]++;
    for (int k = j - 1; k >= 0; k--) {
      nodes[k] = nodes[k + 1].children[idx[k + 1]];
      idx[k] = 0;
    }
    return true;
  }

  /**
   * Moves {@code nodes[h]} to its left neighbour at the same height, which may have another parent.
   * Levels above follow; {@code idx[h]} is left undefined.
   */
  boolean moveLeft(int h) {
    int j = h + 1;
    while (j <= height && idx[j] == 0) {
      j++;
    }
    if (j > height) {
      return false;
    }
    idx[j]--;
    for (int k = j - 1; k >= h; k--) {
      nodes[k] = nodes[k + 1].children[idx[k + 1]];
      if (k > h) {
        idx[k] = nodes[k].size() - 1;
      }
    }
    return true;
  }

  /** Mirror of {@link #moveLeft}. */
  boolean moveRight(int h) {
    int j = h + 1;
    while (j <= height && idx[j] + 1 >= nodes[j].size()) {
      j++;
    }
    if (j > height) {
      return false;
    }
    idx[j]++;
    for (int k = j - 1; k >= h; k--) {
      nodes[k] = nodes[k + 1].children[idx[k + 1]];
      if (k > h) {
        idx[k] = 0;
      }
    }
    return true;
  }
}
