package dev.gmem.core.shareability;

/**
 * Node capacities. Production uses {@link #DEFAULT}; tests shrink the nodes so that small stores
 * already grow deep trees and exercise every rebalancing path.
 */
final class Shape {

  /**
   * 64 packed longs per leaf keep a copied leaf within a few cache lines; 32 children per branch
   * keep the copied path short. Both halve to at least a quarter full, so a run costs at most
   * ~10 bytes and usually ~9.
   */
  static final Shape DEFAULT = new Shape(64, 32);

  final int leafMax;
  final int leafMin;
  final int branchMax;
  final int branchMin;

  Shape(int leafMax, int branchMax) {
    if (leafMax < 4 || branchMax < 4) {
      throw new IllegalArgumentException("node capacities must be >= 4");
    }
    this.leafMax = leafMax;
    this.branchMax = branchMax;
    // At most half of max, so that splitting an overfull level always yields nodes >= min.
    this.leafMin = Math.max(2, leafMax / 4);
    this.branchMin = Math.max(2, branchMax / 4);
  }

  int max(boolean leaf) {
    return leaf ? leafMax : branchMax;
  }

  int min(boolean leaf) {
    return leaf ? leafMin : branchMin;
  }
}
