package dev.gmem.core.alloc;

import dev.gmem.api.GmemException;
import dev.gmem.api.spi.FolioAllocator;

/**
 * Core's default allocator: 4 KiB folios straight from the backend's file (guest_memfd or
 * memfd), which is all a 6.18 guest_memfd hands out. Nothing to reserve, so nothing can fail.
 */
public final class PageAllocator implements FolioAllocator {
  private static final Allocation NOTHING_TO_FREE = new Allocation() {
    @Override
    public void commit() {}

    @Override
    public void free() {}
  };

  @Override
  public Inode setupInode(long size, long flags) throws GmemException {
    return new Inode() {
      @Override
      public int folioOrder() {
        return 0;
      }

      @Override
      public void allocFolio(long index) {}

      /** The backend's file gives every index its own page: a lost race has nothing to give back. */
      @Override
      public Allocation allocate(long index) {
        return NOTHING_TO_FREE;
      }

      @Override
      public void freeFolio(long index, int order) {}

      @Override
      public void close() {}
    };
  }
}
