package dev.gmem.core.convert;

import dev.gmem.api.spi.FolioAllocator;

/**
 * A test allocator handing out folios of {@code 1 << order} pages over the backend's memory, so the
 * engine's split and merge paths run without hugetlb; counts committed restructures.
 */
final class BlockAllocator implements FolioAllocator {
  final int order;
  int splits;
  int merges;

  BlockAllocator(int order) {
    this.order = order;
  }

  @Override
  public Inode setupInode(long size, long flags) {
    return new Inode() {
      @Override
      public int folioOrder() {
        return order;
      }

      @Override
      public void allocFolio(long index) {}

      @Override
      public void freeFolio(long index, int o) {}

      @Override
      public Restructure prepareSplit(long index, int o, int newOrder) {
        return commitCounter(true);
      }

      @Override
      public Restructure prepareMerge(long index, int o) {
        return commitCounter(false);
      }

      @Override
      public void close() {}
    };
  }

  private Restructure commitCounter(boolean split) {
    return new Restructure() {
      @Override
      public void commit() {
        if (split) {
          splits++;
        } else {
          merges++;
        }
      }

      @Override
      public void abort() {}
    };
  }
}
