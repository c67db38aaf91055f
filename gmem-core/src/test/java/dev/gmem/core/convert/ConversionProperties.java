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
import dev.gmem.core.filemap.FolioShape;
import dev.gmem.core.inode.GuestMemInodeImpl;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.statistics.Statistics;

/**
 * The conversion property, reusable by any allocator (core's fake block allocators, the hugetlb
 * plugin on real huge pages): random states, ranges and injected failures. After any failure,
 * shareability ranges, folio structure and the bytes of every shared page are exactly as before;
 * after success they match a page-per-byte reference model, and every block's folios are the
 * {@link FolioShape normal form} of its shareability.
 */
public final class ConversionProperties {
  private static final MemoryIO IO = MemoryIO.getInstance();

  private ConversionProperties() {}

  /** A conversion of pages {@code [start, start + len)}. */
  public record Conv(long start, long len, Shareability target) {}

  /** One case: an inode state built by {@code setup}, {@code writes} and {@code pins}, then {@code conv} with a failure injected at {@code failAt}. */
  public record Case(int pages, boolean initShared, List<Conv> setup, List<Integer> writes, List<Integer> pins, Conv conv,
      ConversionStep failAt) {}

  /** Cases over inodes of 1..{@code maxBlocks} blocks of {@code blockPages}; ranges start and end on block edges often. */
  public static Arbitrary<Case> cases(int blockPages, int maxBlocks) {
    return Arbitraries.integers().between(1, maxBlocks).flatMap(blocks -> {
      int n = blocks * blockPages;
      Arbitrary<Integer> edge = Arbitraries.frequencyOf(
          net.jqwik.api.Tuple.of(1, Arbitraries.integers().between(0, n)),
          net.jqwik.api.Tuple.of(2, Arbitraries.integers().between(0, blocks).map(b -> b * blockPages)),
          net.jqwik.api.Tuple.of(1, Combinators.combine(Arbitraries.integers().between(0, blocks), Arbitraries.integers().between(-2, 2))
              .as((b, d) -> Math.max(0, Math.min(n, b * blockPages + d)))));
      Arbitrary<Conv> conv = Combinators.combine(edge, edge, Arbitraries.of(Shareability.SHARED, Shareability.PRIVATE)).as((a, b, t) -> {
        int s = Math.min(Math.min(a, b), n - 1);
        int e = Math.max(Math.max(a, b), s + 1);
        return new Conv(s, e - s, t);
      });
      Arbitrary<Integer> page = Arbitraries.integers().between(0, n - 1);
      // One final conversion in four undoes the last setup step: that is what merges split pages.
      Arbitrary<Boolean> undo = Arbitraries.frequency(net.jqwik.api.Tuple.of(1, true), net.jqwik.api.Tuple.of(3, false));
      return Combinators.combine(
              Arbitraries.of(true, false),
              conv.list().ofMaxSize(4),
              page.list().ofMaxSize(8),
              page.list().ofMaxSize(2),
              Combinators.combine(conv, undo).as((c, u) -> u ? null : c),
              Arbitraries.of(ConversionStep.class).injectNull(0.3))
          .as((init, setup, writes, pins, c, fail) -> new Case(n, init, setup, writes, pins, c != null || setup.isEmpty()
              ? (c != null ? c : new Conv(0, n, init ? Shareability.PRIVATE : Shareability.SHARED))
              : undo(setup.get(setup.size() - 1)), fail));
    });
  }

  private static Conv undo(Conv c) {
    return new Conv(c.start(), c.len(), c.target() == Shareability.SHARED ? Shareability.PRIVATE : Shareability.SHARED);
  }

  /** Runs {@code c} on a fresh {@code inode} of {@code c.pages()} pages created with INIT_SHARED as {@code c.initShared()}. */
  public static void check(Case c, GuestMemInodeImpl inode) {
    Shareability[] model = new Shareability[c.pages()];
    Arrays.fill(model, c.initShared() ? Shareability.SHARED : Shareability.PRIVATE);
    for (Conv s : c.setup()) {
      inode.convert(s.start() << 12, s.len() << 12, s.target());
      Arrays.fill(model, (int) s.start(), (int) (s.start() + s.len()), s.target());
    }
    long view = inode.guestView().acquire(0, inode.nrPages()).address(0); // unmapped when the inode goes
    for (int p : c.writes()) {
      inode.invalidateLock().readLock().lock();
      try {
        inode.faults().ensureFolio(p);
      } finally {
        inode.invalidateLock().readLock().unlock();
      }
      IO.putLong(view + ((long) p << 12), 0x5a5a0000L + p);
    }
    assertNormalForm(inode, model);
    List<Pin> pins = new ArrayList<>();
    for (int p : c.pins()) {
      if (model[p] == Shareability.SHARED) {
        pins.add(inode.pins().pin(p, 1));
      }
    }

    List<ShareabilityRange> rangesBefore = inode.shareabilityRanges(0, c.pages());
    List<Folio> foliosBefore = inode.folios(0, c.pages());
    byte[] bytesBefore = snapshot(inode, view, c.pages());
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
    inode.conversionFaultInjector(FaultInjector.NONE);
    boolean eagain = changes && conv.target() == Shareability.PRIVATE && pinnedInRange;
    boolean stepRuns = changes && failAt != null && (failAt == ConversionStep.STORE_PREPARE
        || (conv.target() == Shareability.PRIVATE && failAt == ConversionStep.REFCHECK)
        || (!eagain && (failAt == ConversionStep.MAPPINGS_PREPARE || failAt == ConversionStep.ARCH_VETO
            || (conv.target() == Shareability.PRIVATE && failAt == ConversionStep.DETACH_PREPARE))));
    boolean expectEagain = eagain && failAt != ConversionStep.STORE_PREPARE;
    if (failure != null) {
      boolean injected = failAt != null && failure.getMessage().contains("injected at " + failAt);
      assertTrue(injected || (expectEagain && failure.errno() == Errno.EAGAIN), "unexpected failure " + failure);
      assertTrue(failure.errorOffset().isPresent(), "errors carry an offset");
      assertEquals(rangesBefore, inode.shareabilityRanges(0, c.pages()));
      assertEquals(foliosBefore, inode.folios(0, c.pages()));
      assertSharedBytesEqual(bytesBefore, snapshot(inode, view, c.pages()), model);
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
      Arrays.fill(model, (int) conv.start(), (int) (conv.start() + conv.len()), conv.target());
      for (int i = 0; i < c.pages(); i++) {
        assertEquals(model[i], inode.shareability(i), "page " + i);
      }
      assertEquals(pagesOf(foliosBefore), pagesOf(inode.folios(0, c.pages())), "restructuring never adds or frees memory");
      assertArrayEquals(bytesBefore, snapshot(inode, view, c.pages()), "the default arch preserves contents");
    }
    assertNormalForm(inode, model);
    for (Pin p : pins) {
      p.close();
    }
    int folioDelta = inode.folios(0, c.pages()).size() - foliosBefore.size();
    Statistics.label("outcome").collect(failure == null ? "ok" : failure.errno() == Errno.EAGAIN && failAt == null ? "EAGAIN" : "injected " + failAt);
    Statistics.label("restructure").collect(folioDelta > 0 ? "split" : folioDelta < 0 ? "merge" : "none");
  }

  /** Every present block is laid out in the normal form of the model's shareability. */
  public static void assertNormalForm(GuestMemInodeImpl inode, Shareability[] model) {
    int order = inode.folioOrder();
    long block = 1L << order;
    for (long b = 0; b < model.length; b += block) {
      if (!inode.filemap().isPresent(b)) {
        continue;
      }
      List<Folio> expected = new ArrayList<>();
      FolioShape.folios(inode.allocator(), (s, e) -> allPrivate(model, s, e), b, order, (i, o) -> expected.add(new Folio(i, o, 0)));
      List<Folio> actual = new ArrayList<>();
      for (Folio f : inode.folios(b, b + block)) {
        actual.add(new Folio(f.index(), f.order(), 0));
      }
      assertEquals(expected, actual, "block at page " + b + " is not in normal form");
    }
  }

  private static boolean allPrivate(Shareability[] model, long s, long e) {
    for (long i = s; i < e; i++) {
      if (model[(int) i] != Shareability.PRIVATE) {
        return false;
      }
    }
    return true;
  }

  private static Set<Long> pagesOf(List<Folio> folios) {
    Set<Long> pages = new TreeSet<>();
    for (Folio f : folios) {
      for (long i = f.index(); i < f.index() + f.nrPages(); i++) {
        pages.add(i);
      }
    }
    return pages;
  }

  /** The first 8 bytes of every present page (absent pages read as zero without being touched). */
  private static byte[] snapshot(GuestMemInodeImpl inode, long view, int pages) {
    byte[] b = new byte[pages * 8];
    for (int p = 0; p < pages; p++) {
      long v = inode.filemap().isPresent(p) ? IO.getLong(view + ((long) p << 12)) : 0;
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
