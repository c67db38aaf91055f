package dev.gmem.core.spi;

import dev.gmem.api.spi.AllocatorProvider;
import dev.gmem.api.spi.FolioAllocator;
import dev.gmem.api.spi.HostMemory;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * 4 KiB folios over the backend's memory, like core's page allocator, that remembers which
 * indices it has handed out and not got back: what "never returned to the allocator" is checked
 * against. The last instance a runtime created is {@link #last()} (tests run one at a time).
 */
public final class CountingAllocator implements FolioAllocator {
  private static volatile CountingAllocator last;

  /** Indices allocated and not freed, over every inode (tests use one). */
  public final Set<Long> outstanding = ConcurrentHashMap.newKeySet();
  /** Indices freed at least once. */
  public final Set<Long> freed = ConcurrentHashMap.newKeySet();

  public static CountingAllocator last() {
    return last;
  }

  /** The provider, registered only through {@link SpiFixtures}. */
  public static final class Provider implements AllocatorProvider {
    @Override
    public String id() {
      return "spi-counting";
    }

    @Override
    public FolioAllocator create(HostMemory host) {
      CountingAllocator a = new CountingAllocator();
      last = a;
      return a;
    }
  }

  @Override
  public Inode setupInode(long size, long flags) {
    return new Inode() {
      @Override
      public int folioOrder() {
        return 0;
      }

      @Override
      public void allocFolio(long index) {
        outstanding.add(index);
      }

      @Override
      public void freeFolio(long index, int order) {
        outstanding.remove(index);
        freed.add(index);
      }

      @Override
      public void close() {}
    };
  }
}
