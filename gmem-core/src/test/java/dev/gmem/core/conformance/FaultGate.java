package dev.gmem.core.conformance;

import dev.gmem.api.spi.FaultInterceptor;
import dev.gmem.api.spi.Feature;
import dev.gmem.api.spi.FeatureProvider;
import dev.gmem.api.spi.FilemapListener;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.api.spi.GuestFault;
import dev.gmem.api.spi.HostMemory;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Holds one chosen fault in progress until the test releases it, at a point of the fault path a
 * plugin sees: the fault interceptor (before the folio is looked up or allocated) or the filemap
 * listener (after the folio was added). While it is held, the test makes another fault on the
 * same inode: if faults serialised anywhere on the way, that one could not complete.
 *
 * <p>A test feature, registered only through {@code TestRuntimes.withFeature}; it holds nothing
 * unless a test armed it with {@link #arm}.
 */
public final class FaultGate implements FeatureProvider {
  public static final String ID = "fault-gate-test";

  /** Where in the fault path the held fault waits. */
  public enum Point {
    INTERCEPTOR,
    FILEMAP_ADDED
  }

  private static volatile FaultGate.Armed armed;

  /** The fault of page {@code index} of inode {@code ino} that reaches {@code point} first is held. */
  public static Armed arm(Point point, long ino, long index) {
    Armed a = new Armed(point, ino, index);
    armed = a;
    return a;
  }

  /** One armed hold: {@link #entered} once the fault waits, {@link #release()} lets it go. */
  public static final class Armed implements AutoCloseable {
    final Point point;
    final long ino;
    final long index;
    final CountDownLatch entered = new CountDownLatch(1);
    private final CountDownLatch release = new CountDownLatch(1);

    Armed(Point point, long ino, long index) {
      this.point = point;
      this.ino = ino;
      this.index = index;
    }

    /** Whether the chosen fault reached its point and waits there (a deadlock guard of a minute, not a timing). */
    public boolean awaitEntered() throws InterruptedException {
      return entered.await(1, TimeUnit.MINUTES);
    }

    public void release() {
      release.countDown();
    }

    private void pass(Point at, long faultIno, long faultIndex) {
      if (at != point || faultIno != ino || faultIndex != index || entered.getCount() == 0) {
        return;
      }
      entered.countDown();
      try {
        if (!release.await(1, TimeUnit.MINUTES)) {
          throw new IllegalStateException("the held fault was never released");
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException(e);
      }
    }

    /** Disarms and releases. */
    @Override
    public void close() {
      if (armed == this) {
        armed = null;
      }
      release();
    }
  }

  private static void pass(Point at, long ino, long index) {
    Armed a = armed;
    if (a != null) {
      a.pass(at, ino, index);
    }
  }

  @Override
  public String id() {
    return ID;
  }

  @Override
  public Feature create(HostMemory host) {
    FaultInterceptor interceptor = new FaultInterceptor() {
      @Override
      public long guestFault(GuestFault fault) {
        pass(Point.INTERCEPTOR, fault.page().ino(), fault.page().index());
        return 0;
      }

      @Override
      public void hostFault(GmemPage page, boolean write) {
        pass(Point.INTERCEPTOR, page.ino(), page.index());
      }
    };
    FilemapListener listener = new FilemapListener() {
      @Override
      public void folioAdded(long ino, long flags, long index, int order) {
        pass(Point.FILEMAP_ADDED, ino, index);
      }
    };
    return new Feature() {
      @Override
      public FaultInterceptor faultInterceptor() {
        return interceptor;
      }

      @Override
      public FilemapListener filemapListener() {
        return listener;
      }
    };
  }
}
