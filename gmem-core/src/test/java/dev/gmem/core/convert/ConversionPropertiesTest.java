package dev.gmem.core.convert;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.kenai.jffi.MemoryIO;
import dev.gmem.api.Errno;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.Pin;
import dev.gmem.api.Shareability;
import dev.gmem.api.ShareabilityRange;
import dev.gmem.core.inode.GuestMemInodeImpl;
import java.util.ArrayList;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.statistics.Statistics;

/**
 * Random states, ranges and injected failures: after any failure, shareability ranges, folio
 * structure and the bytes of every shared page are exactly as before; after success they match a
 * page-per-byte reference model.
 */
class ConversionPropertiesTest {
  private static final MemoryIO IO = MemoryIO.getInstance();

  record Conv(long start, long len, Shareability target) {}

  record Case(int order, int pages, boolean initShared, List<Conv> setup, List<Integer> writes, List<Integer> pins, Conv conv,
      ConversionStep failAt) {}

  @Provide
  Arbitrary<Case> cases() {
    return Arbitraries.of(0, 2).flatMap(order -> Arbitraries.integers().between(1, 48 >> order).flatMap(blocks -> {
      int n = blocks << order;
      Arbitrary<Conv> conv = Combinators.combine(
              Arbitraries.longs().between(0, n - 1), Arbitraries.longs().between(1, n), Arbitraries.of(Shareability.SHARED, Shareability.PRIVATE))
          .as((s, l, t) -> new Conv(s, Math.min(l, n - s), t));
      Arbitrary<Integer> page = Arbitraries.integers().between(0, n - 1);
      return Combinators.combine(
              Arbitraries.of(true, false),
              conv.list().ofMaxSize(4),
              page.list().ofMaxSize(8),
              page.list().ofMaxSize(2),
              conv,
              Arbitraries.of(ConversionStep.class).injectNull(0.3))
          .as((init, setup, writes, pins, c, fail) -> new Case(order, n, init, setup, writes, pins, c, fail));
    }));
  }

  @Property(tries = 10_000)
  @net.jqwik.api.statistics.StatisticsReport(format = net.jqwik.api.statistics.Histogram.class)
  void failedConversionsChangeNothingAndSuccessfulOnesMatchTheModel(@ForAll("cases") Case c) {
    BlockAllocator allocator = new BlockAllocator(c.order());
    try (TestInode t = new TestInode(c.pages(), c.initShared(), TestInode.SW_PROTECTED, allocator)) {
      GuestMemInodeImpl inode = t.inode;
      Shareability[] model = new Shareability[c.pages()];
      java.util.Arrays.fill(model, c.initShared() ? Shareability.SHARED : Shareability.PRIVATE);
      for (Conv s : c.setup()) {
        inode.convert(s.start() << 12, s.len() << 12, s.target());
        java.util.Arrays.fill(model, (int) s.start(), (int) (s.start() + s.len()), s.target());
      }
      long view = inode.guestViewAddress();
      for (int p : c.writes()) {
        inode.invalidateLock().readLock().lock();
        try {
          inode.ensureFolio(p);
        } finally {
          inode.invalidateLock().readLock().unlock();
        }
        IO.putLong(view + ((long) p << 12), 0x5a5a0000L + p);
      }
      List<Pin> pins = new ArrayList<>();
      for (int p : c.pins()) {
        if (model[p] == Shareability.SHARED) {
          pins.add(inode.pin(p, 1));
        }
      }

      List<ShareabilityRange> rangesBefore = inode.shareabilityRanges(0, c.pages());
      List<Folio> foliosBefore = inode.folios(0, c.pages());
      byte[] bytesBefore = snapshot(view, c.pages());
      ConversionStep failAt = c.failAt();
      inode.conversionFaultInjector((step, index) -> {
        if (step == failAt) {
          throw GmemException.atOffset(Errno.ENOMEM, index << 12, "injected at " + step);
        }
      });
      Conv conv = c.conv();
      boolean changes = false;
      boolean pinnedInRange = false;
      for (long i = conv.start(); i < conv.start() + conv.len(); i++) {
        changes |= model[(int) i] != conv.target();
        for (Pin p : pins) {
          pinnedInRange |= p.offset() >>> 12 == i;
        }
      }
      GmemException failure = null;
      try {
        inode.convert(conv.start() << 12, conv.len() << 12, conv.target());
      } catch (GmemException e) {
        failure = e;
      }
      boolean stepRuns = changes && failAt != null && (failAt == ConversionStep.STORE_PREPARE
          || (conv.target() == Shareability.PRIVATE && (failAt == ConversionStep.UNMAP || failAt == ConversionStep.REFCHECK)));
      boolean expectEagain = changes && conv.target() == Shareability.PRIVATE && pinnedInRange
          && failAt != ConversionStep.STORE_PREPARE && failAt != ConversionStep.UNMAP;
      if (failure != null) {
        boolean injected = failAt != null && failure.getMessage().contains("injected at " + failAt);
        assertTrue(injected || (expectEagain && failure.errno() == Errno.EAGAIN), "unexpected failure " + failure);
        assertTrue(failure.errorOffset().isPresent(), "errors carry an offset");
        assertEquals(rangesBefore, inode.shareabilityRanges(0, c.pages()));
        assertEquals(foliosBefore, inode.folios(0, c.pages()));
        assertSharedBytesEqual(bytesBefore, snapshot(view, c.pages()), model);
        if (!injected) {
          long first = Long.MAX_VALUE;
          for (Pin p : pins) {
            long i = p.offset() >>> 12;
            if (i >= conv.start() && i < conv.start() + conv.len()) {
              first = Math.min(first, i);
            }
          }
          assertEquals(first << 12, failure.errorOffset().getAsLong());
        }
      } else {
        assertTrue(!stepRuns && !expectEagain, "expected a failure, conversion succeeded");
        java.util.Arrays.fill(model, (int) conv.start(), (int) (conv.start() + conv.len()), conv.target());
        for (int i = 0; i < c.pages(); i++) {
          assertEquals(model[i], inode.shareability(i), "page " + i);
        }
        assertEquals(pagesOf(foliosBefore), pagesOf(inode.folios(0, c.pages())), "restructuring never adds or frees memory");
        for (Folio f : inode.folios(0, c.pages())) {
          if (f.order() > 0) {
            assertTrue(inode.shareabilityStore().isUniform(f.index(), f.index() + f.nrPages(), Shareability.PRIVATE),
                "a huge folio holds only private pages: " + f);
          }
        }
        assertArrayEquals(bytesBefore, snapshot(view, c.pages()), "the default arch preserves contents");
      }
      for (Pin p : pins) {
        p.close();
      }
      Statistics.label("outcome").collect(failure == null ? "ok" : failure.errno() == Errno.EAGAIN && failAt == null ? "EAGAIN" : "injected " + failAt);
      Statistics.label("split").collect(allocator.splits > 0);
      Statistics.label("merge").collect(allocator.merges > 0);
    }
  }

  private static java.util.Set<Long> pagesOf(List<Folio> folios) {
    java.util.Set<Long> pages = new java.util.TreeSet<>();
    for (Folio f : folios) {
      for (long i = f.index(); i < f.index() + f.nrPages(); i++) {
        pages.add(i);
      }
    }
    return pages;
  }

  private static byte[] snapshot(long view, int pages) {
    byte[] b = new byte[pages * 8];
    for (int p = 0; p < pages; p++) {
      long v = IO.getLong(view + ((long) p << 12));
      for (int k = 0; k < 8; k++) {
        b[p * 8 + k] = (byte) (v >>> (8 * k));
      }
    }
    return b;
  }

  private static void assertSharedBytesEqual(byte[] before, byte[] after, Shareability[] model) {
    for (int p = 0; p < model.length; p++) {
      if (model[p] == Shareability.SHARED) {
        for (int k = 0; k < 8; k++) {
          assertEquals(before[p * 8 + k], after[p * 8 + k], "shared page " + p);
        }
      }
    }
  }
}
