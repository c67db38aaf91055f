package dev.gmem.core.spi;

import dev.gmem.api.spi.AllocatorProvider;
import dev.gmem.api.spi.FolioAllocator;
import dev.gmem.api.spi.HostMemory;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Folios over the backend's memory — 4 KiB like core's page allocator, or 2 MiB folios for
 * files created with {@link #BLOCKS} — that remembers which indices it has handed out and not got
 * back: what "never returned to the allocator" is checked against. The last instance a runtime
 * created is {@link #last()} (tests run one at a time).
 */
public final class CountingAllocator implements FolioAllocator {
  /** Creation flag for 2 MiB folios (split and merged without metadata). */
  public static final long BLOCKS = 1L << 41;

  private static volatile CountingAllocator last;
  private final int order;

  private CountingAllocator(int order) {
    this.order = order;
  }

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
      CountingAllocator a = new CountingAllocator(0);
      last = a;
      return a;
    }
  }

  /** The 2 MiB variant, chosen by {@link #BLOCKS}. */
  public static final class BlockProvider implements AllocatorProvider {
    @Override
    public String id() {
      return "spi-counting-blocks";
    }

    @Override
    public long creationFlags() {
      return BLOCKS;
    }

    @Override
    public FolioAllocator create(HostMemory host) {
      return new CountingAllocator(9);
    }
  }

  @Override
  public Inode setupInode(long size, long flags) {
    return new Inode() {
      @Override
      public int folioOrder() {
        return order;
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
