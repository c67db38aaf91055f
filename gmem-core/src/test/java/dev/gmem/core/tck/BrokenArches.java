package dev.gmem.core.tck;

import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.Errno;
import dev.gmem.api.Shareability;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.Conversion;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.api.spi.HostMemory;
import dev.gmem.api.spi.Prepared;
import dev.gmem.tck.ArchContractTests;
import java.nio.ByteBuffer;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;

/**
 * Deliberately broken SW_PROTECTED arches, one per arch contract, each run through the kit as a
 * vendor would (a nested class extending {@link ArchContractTests}; surefire skips nested classes,
 * so they run only from {@link TckCanFailTest}). Each bug is one a real plugin could have.
 */
final class BrokenArches {
  private BrokenArches() {}

  /** SW_PROTECTED as core's default arch has it; each fixture overrides one thing. */
  static class SwHooks implements ArchHooks {
    @Override
    public boolean hasPrivateMemory() {
      return true;
    }

    @Override
    public boolean supportsInitShared() {
      return true;
    }
  }

  static ArchProvider provider(String id, Supplier<ArchHooks> hooks) {
    return new ArchProvider() {
      @Override
      public String id() {
        return id;
      }

      @Override
      public Set<VmType> vmTypes() {
        return Set.of(VmType.SW_PROTECTED);
      }

      @Override
      public ArchHooks create(VmType type, HostMemory host) {
        return hooks.get();
      }
    };
  }

  /** prepare-once: the firmware is busy the first time a page is prepared, and the arch passes EAGAIN on instead of retrying. */
  static class PrepareFailsOnce extends ArchContractTests {
    @Override
    protected ArchProvider provider() {
      return BrokenArches.provider("broken-prepare", () -> new SwHooks() {
        final Set<GmemPage> tried = ConcurrentHashMap.newKeySet();

        @Override
        public void prepare(GmemPage first, long gfn, int order) {
          if (tried.add(first)) {
            throw new GmemException(Errno.EAGAIN, "firmware busy");
          }
        }
      });
    }
  }

  /** invalidate-ponr: the firmware step runs in Prepared.commit, after the point of no return, and throws. */
  static class CommitThrows extends ArchContractTests {
    @Override
    protected ArchProvider provider() {
      return BrokenArches.provider("broken-commit", () -> new SwHooks() {
        @Override
        public Prepared prepareConversion(Conversion run) {
          return new Prepared() {
            @Override
            public void commit() {
              throw new IllegalStateException("firmware refused the conversion of " + run);
            }

            @Override
            public void abort() {}
          };
        }
      });
    }
  }

  /** veto: ownership handed to the host in prepareConversion is not taken back by abort. */
  static class AbortKeepsOwnership extends ArchContractTests {
    @Override
    protected ArchProvider provider() {
      return BrokenArches.provider("broken-abort", () -> new SwHooks() {
        final Set<GmemPage> hostOwned = ConcurrentHashMap.newKeySet();

        @Override
        public Prepared prepareConversion(Conversion run) {
          for (long i = 0; i < run.nrPages(); i++) {
            if (run.to() == Shareability.SHARED) {
              hostOwned.add(run.first().plus(i));
            } else {
              hostOwned.remove(run.first().plus(i));
            }
          }
          return Prepared.NOTHING; // abort should give the pages back to the guest
        }

        @Override
        public boolean hostMayFault(GmemPage page, Shareability s) {
          return s == Shareability.SHARED || hostOwned.contains(page);
        }
      });
    }
  }

  /** populate-private: the post-populate callback measures but never places the source bytes. */
  static class PopulateDropsSource extends ArchContractTests {
    @Override
    protected ArchProvider provider() {
      return BrokenArches.provider("broken-populate", () -> new SwHooks() {
        @Override
        public boolean postPopulate(GmemPage page, long gfn, ByteBuffer source, ByteBuffer target, long flags) {
          return true;
        }
      });
    }
  }

  /** content-effect: documented to zero pages leaving private use (TDX), but its hooks claim PRESERVE. */
  static class ClaimsPreserve extends ArchContractTests {
    @Override
    protected ArchProvider provider() {
      return BrokenArches.provider("broken-content", SwHooks::new);
    }

    @Override
    protected ArchHooks.ContentEffect expectedContentEffect(dev.gmem.api.Vm vm, Shareability from, Shareability to) {
      return from == Shareability.PRIVATE ? ArchHooks.ContentEffect.ZERO : ArchHooks.ContentEffect.PRESERVE;
    }
  }

  /** max-mapping-order: documented to map private pages at 4 KiB only (TDX), but answers 1 GiB. */
  static class MapsPrivateHuge extends ArchContractTests {
    @Override
    protected ArchProvider provider() {
      return BrokenArches.provider("broken-order", () -> new SwHooks() {
        @Override
        public int maxMappingOrder(GmemPage page, long gfn, boolean isPrivate) {
          return Folio.PUD_ORDER;
        }
      });
    }

    @Override
    protected int documentedMaxMappingOrder(boolean isPrivate) {
      return isPrivate ? 0 : -1;
    }
  }

  /** host-may-fault: lets the host fault private pages. */
  static class HostFaultsPrivate extends ArchContractTests {
    @Override
    protected ArchProvider provider() {
      return BrokenArches.provider("broken-host", () -> new SwHooks() {
        @Override
        public boolean hostMayFault(GmemPage page, Shareability s) {
          return s != Shareability.NONE;
        }
      });
    }
  }

  /** flags-refused: documented to refuse INIT_SHARED (TDX, SNP), but its hooks support it. */
  static class AcceptsInitShared extends ArchContractTests {
    @Override
    protected ArchProvider provider() {
      return BrokenArches.provider("broken-flags", SwHooks::new);
    }

    @Override
    protected boolean initSharedRefused(dev.gmem.api.Vm vm) {
      return true;
    }
  }

  /** leak-on-failure: a failed reclaim is thrown from invalidate instead of reported with ArchContext.leak. */
  static class InvalidateThrows extends ArchContractTests {
    @Override
    protected ArchProvider provider() {
      return BrokenArches.provider("broken-leak", () -> new SwHooks() {
        @Override
        public void invalidate(GmemPage first, long nrPages) {
          if (first.index() <= 1 && first.index() + nrPages > 1) {
            throw new IllegalStateException("RMPUPDATE failed for " + first.plus(1 - first.index()));
          }
        }
      });
    }
  }

  /** conversion-race: answers from a stale copy of its table now and then, letting the host fault a private page. */
  static class StaleHostAnswer extends ArchContractTests {
    @Override
    protected ArchProvider provider() {
      return BrokenArches.provider("broken-race", () -> new SwHooks() {
        final AtomicLong asked = new AtomicLong();

        @Override
        public boolean hostMayFault(GmemPage page, Shareability s) {
          return s == Shareability.SHARED || (s == Shareability.PRIVATE && asked.incrementAndGet() % 5 == 0);
        }
      });
    }
  }

  /** bad-input: accepts populate flags it does not define. */
  static class AcceptsAnyPopulateFlags extends ArchContractTests {
    @Override
    protected ArchProvider provider() {
      return BrokenArches.provider("broken-input", () -> new SwHooks() {
        @Override
        public void validatePopulate(long gpa, long npages, long flags, boolean inPlace) {}
      });
    }
  }
}
