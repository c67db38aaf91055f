package dev.gmem.core.shareability;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.gmem.api.Shareability;
import dev.gmem.api.ShareabilityRange;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/**
 * Sizes up to 2^52 pages, against a reference that replays the update log: the value of a page is
 * the target of the last update covering it.
 */
class LargeStorePropertiesTest {

  record Upd(long start, long end, Shareability target) {}

  record Case(long n, Shareability initial, List<Upd> updates) {}

  @Provide
  Arbitrary<Case> cases() {
    Arbitrary<Long> sizes = Arbitraries.oneOf(
        Arbitraries.longs().between(1, 1L << 50),
        Arbitraries.of(1L, 2L, 1L << 50, Entries.MAX_PAGES, (1L << 18) + 1));
    return sizes.flatMap(n -> {
      Arbitrary<Long> pos = Arbitraries.oneOf(
          Arbitraries.longs().between(0, n - 1),
          Arbitraries.of(0L, n - 1, n / 2));
      Arbitrary<Upd> upd = Combinators.combine(pos, pos, Arbitraries.of(Shareability.class))
          .as((x, y, t) -> new Upd(Math.min(x, y), Math.max(x, y) + 1, t));
      return Combinators.combine(Arbitraries.just(n), Arbitraries.of(Shareability.class), upd.list().ofMaxSize(40))
          .as(Case::new);
    });
  }

  @Property(tries = 200)
  void hugeStoresAgreeWithUpdateLog(@ForAll("cases") Case c) {
    ShareabilityStore store = new ShareabilityStore(c.n(), c.initial(), AllocationFailureInjector.NEVER, new Shape(4, 4));
    List<Upd> log = new ArrayList<>();
    for (Upd u : c.updates()) {
      store.set(u.start(), u.end(), u.target());
      log.add(u);
      Invariants.check(store.currentState(), store.nrPages(), new Shape(4, 4));
      List<ShareabilityRange> expected = reference(c.n(), c.initial(), log);
      assertEquals(expected, store.ranges(0, c.n()));
      assertEquals(expected.size(), store.rangeCount());
      for (Shareability s : Shareability.values()) {
        assertEquals(expected.stream().filter(r -> r.shareability() == s).mapToLong(ShareabilityRange::nrPages).sum(),
            store.countPages(s));
      }
      for (ShareabilityRange r : expected) {
        assertEquals(r.shareability(), store.get(r.start()));
        assertEquals(r.shareability(), store.get(r.end() - 1));
        assertEquals(true, store.isUniform(r.start(), r.end(), r.shareability()));
        assertEquals(List.of(r), store.ranges(r.start(), r.end()));
      }
    }
  }

  private static Shareability valueAt(long page, Shareability initial, List<Upd> log) {
    for (int i = log.size() - 1; i >= 0; i--) {
      Upd u = log.get(i);
      if (u.start() <= page && page < u.end()) {
        return u.target();
      }
    }
    return initial;
  }

  private static List<ShareabilityRange> reference(long n, Shareability initial, List<Upd> log) {
    TreeSet<Long> cuts = new TreeSet<>(List.of(0L, n));
    for (Upd u : log) {
      cuts.add(u.start());
      cuts.add(u.end());
    }
    List<ShareabilityRange> out = new ArrayList<>();
    Long prev = null;
    for (long cut : cuts) {
      if (prev != null) {
        Shareability v = valueAt(prev, initial, log);
        if (!out.isEmpty() && out.get(out.size() - 1).shareability() == v) {
          ShareabilityRange last = out.remove(out.size() - 1);
          out.add(new ShareabilityRange(last.start(), cut, v));
        } else {
          out.add(new ShareabilityRange(prev, cut, v));
        }
      }
      prev = cut;
    }
    return out;
  }
}
