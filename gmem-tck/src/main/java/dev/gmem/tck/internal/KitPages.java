package dev.gmem.tck.internal;

import dev.gmem.api.spi.FolioAllocator;

/**
 * The kit's own allocator for arch runtimes: the backend's file holds the bytes (as core's 4 KiB
 * allocator does), folios are 4 KiB, or 2 MiB for files created with {@link #BLOCKS} so that
 * mapping orders above 0 exist without a huge-page pool.
 */
final class KitPages implements FolioAllocator {
  /** Creation flag the kit's allocator claims: 2 MiB folios. */
  static final long BLOCKS = 1L << 44;

  private static final Allocation NOTHING_TO_FREE = new Allocation() {
    @Override
    public void commit() {}

    @Override
    public void free() {}
  };

  @Override
  public Inode setupInode(long size, long flags) {
    int order = (flags & BLOCKS) != 0 ? 9 : 0;
    return new Inode() {
      @Override
      public int folioOrder() {
        return order;
      }

      @Override
      public void allocFolio(long index) {}

      /** Each index has its own bytes in the backend's file: a lost race has nothing to give back. */
      @Override
      public Allocation allocate(long index) {
        return NOTHING_TO_FREE;
      }

      @Override
      public void freeFolio(long index, int o) {}

      @Override
      public void close() {}
    };
  }
}
