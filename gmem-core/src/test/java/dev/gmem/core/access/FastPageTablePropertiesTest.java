package dev.gmem.core.access;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.core.access.FastPageTable.Kind;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import org.junit.jupiter.api.Test;

/** Random install/zap sequences against a set of (page, kind) entries, on small and huge sparse tables. */
class FastPageTablePropertiesTest {

  /** {@code zap}: zap [page, page + len) instead of installing. */
  record Op(boolean zap, long page, long len, Kind kind) {}

  @Provide
  Arbitrary<Long> sizes() {
    return Arbitraries.oneOf(
        Arbitraries.longs().between(1, 9000),
        Arbitraries.of(4096L, 1L << 21, (1L << 21) + 1, 1L << 30, 1L << 52));
  }

  @Provide
  Arbitrary<List<Op>> ops() {
    return Combinators.combine(
            Arbitraries.integers().between(0, 4).map(i -> i == 0),
            Arbitraries.longs().between(0, Long.MAX_VALUE),
            Arbitraries.longs().between(1, 20_000),
            Arbitraries.of(Kind.class))
        .as(Op::new)
        .list().ofMinSize(1).ofMaxSize(60);
  }

  private record Entry(long page, Kind kind) {}

  @Property(tries = 300)
  void agreesWithASetOfEntries(@ForAll("sizes") long nrPages, @ForAll("ops") List<Op> ops) {
    FastPageTable t = new FastPageTable(nrPages);
    Set<Entry> model = new HashSet<>();
    // Pages cluster near a few places, so that zaps hit installed entries, also across leaves.
    long[] anchors = {0, nrPages / 2, Math.max(0, nrPages - 5000), 4095 % nrPages};
    for (Op op : ops) {
      long page = (anchors[(int) (op.page() & 3)] + (op.page() >>> 2) % 10_000) % nrPages;
      if (op.zap()) {
        long end = Math.min(nrPages, page + op.len());
        // zap answers whether it removed an entry: the caller skips the grace period when not
        assertEquals(model.removeIf(e -> e.page() >= page && e.page() < end), t.zap(page, end), "zap's answer");
      } else {
        t.install(page, op.kind());
        model.add(new Entry(page, op.kind()));
      }
    }
    for (Op op : ops) {
      long page = (anchors[(int) (op.page() & 3)] + (op.page() >>> 2) % 10_000) % nrPages;
      for (long p = Math.max(0, page - 1); p <= Math.min(nrPages - 1, page + 1); p++) {
        for (Kind k : Kind.values()) {
          assertEquals(model.contains(new Entry(p, k)), t.isMapped(p, k), "page " + p + " " + k);
        }
      }
    }
    assertFalse(t.isMapped(nrPages, Kind.HOST), "beyond the end");
    assertFalse(t.isMapped(-1, Kind.HOST), "negative");
  }

  @Test
  void zapOfAWholeHugeSparseTableSkipsItsHoles() {
    FastPageTable t = new FastPageTable(1L << 52);
    t.install(7, Kind.HOST);
    t.install((1L << 52) - 1, Kind.GUEST_PRIVATE);
    t.install(1L << 40, Kind.GUEST_SHARED);
    t.zap(0, 1L << 52); // must be quick: three leaves, five levels
    assertFalse(t.isMapped(7, Kind.HOST));
    assertFalse(t.isMapped((1L << 52) - 1, Kind.GUEST_PRIVATE));
    assertFalse(t.isMapped(1L << 40, Kind.GUEST_SHARED));
  }

  @Test
  void killedTableMissesForGood() {
    FastPageTable t = new FastPageTable(100);
    t.install(3, Kind.HOST);
    assertTrue(t.isMapped(3, Kind.HOST));
    t.kill();
    assertFalse(t.isMapped(3, Kind.HOST));
    t.install(3, Kind.HOST);
    assertFalse(t.isMapped(3, Kind.HOST));
  }
}
