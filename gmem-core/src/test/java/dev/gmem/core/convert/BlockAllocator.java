package dev.gmem.core.convert;

import dev.gmem.api.spi.FolioAllocator;

/**
 * A test allocator handing out folios of {@code 1 << order} pages over the backend's memory, so the
 * engine's split and merge paths run without hugetlb; counts committed restructures. With a
 * {@code splitOrder} between 0 and {@code order} it splits in stages (order → splitOrder → 0), as
 * hugetlb does 1 GiB → 2 MiB → 4 KiB, only smaller.
 */
final class BlockAllocator implements FolioAllocator {
  final int order;
  final int splitOrder;
  int splits;
  int merges;
  /** Folios freed, as {index, order}. */
  final java.util.List<long[]> freed = new java.util.ArrayList<>();

  BlockAllocator(int order) {
    this(order, 0);
  }

  BlockAllocator(int order, int splitOrder) {
    this.order = order;
    this.splitOrder = splitOrder;
  }

  @Override
  public Inode setupInode(long size, long flags) {
    return new Inode() {
      @Override
      public int folioOrder() {
        return order;
      }

      @Override
      public int splitOrder(int o) {
        return o > splitOrder ? splitOrder : 0;
      }

      @Override
      public void allocFolio(long index) {}

      @Override
      public void freeFolio(long index, int o) {
        freed.add(new long[] {index, o});
      }

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
