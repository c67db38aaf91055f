package dev.gmem.core.tck;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.spi.AllocatorProvider;
import dev.gmem.api.spi.FolioAllocator;
import dev.gmem.api.spi.FolioAllocator.Restructure;
import dev.gmem.api.spi.HostMemory;
import dev.gmem.tck.AllocatorContractTests;

/**
 * Deliberately broken 2 MiB allocators (bookkeeping over the backend's file, as a hugetlb
 * allocator without its pool), one per allocator contract, run through the kit from
 * {@link TckCanFailTest}.
 */
final class BrokenAllocators {
  private BrokenAllocators() {}

  static final long BLOCKS = 1L << 45;

  /** What each fixture gets wrong. */
  enum Bug {
    ABORT_THROWS, NO_RESERVATION, MERGE_REFUSED
  }

  static AllocatorProvider provider(Bug bug) {
    return new AllocatorProvider() {
      @Override
      public String id() {
        return "broken-" + bug.name().toLowerCase(java.util.Locale.ROOT);
      }

      @Override
      public long creationFlags() {
        return BLOCKS;
      }

      @Override
      public FolioAllocator create(HostMemory host) {
        return (size, flags) -> new Inode(bug);
      }
    };
  }

  private static final class Inode implements FolioAllocator.Inode {
    private final Bug bug;

    Inode(Bug bug) {
      this.bug = bug;
    }

    @Override
    public int folioOrder() {
      return 9;
    }

    @Override
    public void allocFolio(long index) {}

    @Override
    public void freeFolio(long index, int order) {}

    @Override
    public Restructure prepareSplit(long index, int order, int newOrder) {
      return restructure();
    }

    @Override
    public Restructure prepareMerge(long index, int order) {
      if (bug == Bug.MERGE_REFUSED) {
        throw new GmemException(Errno.EBUSY, "merge metadata busy");
      }
      return restructure();
    }

    private Restructure restructure() {
      return new Restructure() {
        @Override
        public void commit() {}

        @Override
        public void abort() {
          if (bug == Bug.ABORT_THROWS) {
            throw new IllegalStateException("cannot undo a prepared restructure");
          }
        }
      };
    }

    @Override
    public void close() {}
  }

  /** alloc-split-merge: a prepared merge cannot be undone when the conversion is refused. */
  static class AbortThrows extends AllocatorContractTests {
    @Override
    protected AllocatorProvider provider() {
      return BrokenAllocators.provider(Bug.ABORT_THROWS);
    }

    @Override
    protected long creationFlags() {
      return BLOCKS;
    }
  }

  /** alloc-enomem: reserves nothing, so a file beyond its pool is accepted and would fail at fault time. */
  static class NoReservation extends AllocatorContractTests {
    @Override
    protected AllocatorProvider provider() {
      return BrokenAllocators.provider(Bug.NO_RESERVATION);
    }

    @Override
    protected long creationFlags() {
      return BLOCKS;
    }

    @Override
    protected long exhaustingSize() {
      return 64L << 20; // its "pool" is documented as 32 MiB
    }
  }

  /** alloc-punch: refuses to merge a split huge page, so a whole punch cannot free it. */
  static class MergeRefused extends AllocatorContractTests {
    @Override
    protected AllocatorProvider provider() {
      return BrokenAllocators.provider(Bug.MERGE_REFUSED);
    }

    @Override
    protected long creationFlags() {
      return BLOCKS;
    }
  }
}
