package dev.gmem.core.shareability;

/**
 * One immutable, published version of a store. Readers load it once and answer from it alone, which
 * is what makes them lock-free and never torn.
 */
final class State {

  final Node root;
  /** 0 when the root is a leaf. */
  final int height;
  final long ranges;
  /** Pages per {@link dev.gmem.api.Shareability} ordinal; never mutated after publication. */
  final long[] pages;
  final long version;

  State(Node root, int height, long ranges, long[] pages, long version) {
    this.root = root;
    this.height = height;
    this.ranges = ranges;
    this.pages = pages;
    this.version = version;
  }
}
