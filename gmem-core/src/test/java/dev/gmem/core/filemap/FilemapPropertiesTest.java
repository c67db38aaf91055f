package dev.gmem.core.filemap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.gmem.api.Folio;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.statistics.Statistics;

/** Random add/remove/split/merge/get/put/prepare sequences against a per-page model. */
class FilemapPropertiesTest {

  enum Kind { ADD, ADD_ALL, REMOVE, SPLIT, MERGE, GET, PUT, MARK, CLEAR }

  /** Raw draws; reduced against the current model when applied. */
  record Op(Kind kind, int a, int b, int order, boolean pickPresent) {}

  @Provide
  Arbitrary<List<Op>> ops() {
    Arbitrary<Kind> kind = Arbitraries.frequencyOf(
        Tuple.of(6, Arbitraries.just(Kind.ADD)),
        Tuple.of(2, Arbitraries.just(Kind.ADD_ALL)),
        Tuple.of(2, Arbitraries.just(Kind.REMOVE)),
        Tuple.of(3, Arbitraries.just(Kind.SPLIT)),
        Tuple.of(3, Arbitraries.just(Kind.MERGE)),
        Tuple.of(2, Arbitraries.just(Kind.GET)),
        Tuple.of(2, Arbitraries.just(Kind.PUT)),
        Tuple.of(1, Arbitraries.just(Kind.MARK)),
        Tuple.of(1, Arbitraries.just(Kind.CLEAR)));
    Arbitrary<Op> op = Combinators.combine(
            kind,
            Arbitraries.integers().between(0, 1 << 20),
            Arbitraries.integers().between(0, 1 << 20),
            Arbitraries.integers().between(0, 12),
            Arbitraries.frequency(Tuple.of(4, true), Tuple.of(1, false)))
        .as(Op::new);
    return op.list().ofMinSize(1).ofMaxSize(40);
  }

  @Provide
  Arbitrary<Integer> sizes() {
    return Arbitraries.oneOf(
        Arbitraries.integers().between(1, 96),
        Arbitraries.integers().between(1000, 4096),
        Arbitraries.of(512, 1024, 2048, 4096));
  }

  @Property(tries = 200)
  void agreesWithModel(@ForAll("sizes") int n, @ForAll("ops") List<Op> ops, @ForAll boolean populated, @ForAll long seed) {
    Filemap fm = new Filemap(n);
    FilemapModel m = new FilemapModel(n);
    Random rnd = new Random(seed);
    int maxOrder = 31 - Integer.numberOfLeadingZeros(n);
    if (populated) { // cover the file with the largest aligned folios: splits and merges then mostly succeed
      for (int p = 0; p < n; ) {
        int o = Math.min(Integer.numberOfTrailingZeros(p | (1 << 30)), 31 - Integer.numberOfLeadingZeros(n - p));
        o = Math.min(o, 12);
        m.add(p, o);
        fm.add(p, o);
        p += 1 << o;
      }
      verify(fm, m, rnd);
    }
    for (Op op : ops) {
      int o = Math.min(op.order(), maxOrder);
      int page = page(m, op.a(), op.pickPresent());
      switch (op.kind()) {
        case ADD -> {
          int index = (op.a() % (n >> o)) << o;
          boolean added = m.add(index, o);
          assertEquals(added, fm.add(index, o), "add " + index + "/" + o);
          collect(op.kind(), added, o);
        }
        case ADD_ALL -> {
          int index = (op.a() % (n >> o)) << o;
          int count = 1 + op.b() % ((n - index) >> o);
          long added = 0;
          for (int i = 0; i < count; i++) {
            added += m.add(index + (i << o), o) ? 1 : 0;
          }
          assertEquals(added, fm.addAll(index, o, count), "addAll " + index + "/" + o + " x" + count);
          collect(op.kind(), added > 0, o);
        }
        case REMOVE -> {
          int s = op.a() % n;
          int e = s + 1 + op.b() % (n - s);
          if (op.pickPresent() && m.present(page)) { // often exactly around existing folios
            s = (int) m.start[page] - (op.b() % 2 == 0 ? 0 : Math.min((int) m.start[page], op.b() % 7));
            e = Math.min(n, (int) m.start[page] + (1 << m.order[page]) * (1 + op.b() % 3));
          }
          List<Folio> removed = m.remove(s, e);
          assertEquals(removed, fm.remove(s, e));
          collect(op.kind(), !removed.isEmpty(), removed.stream().mapToInt(Folio::order).max().orElse(0));
        }
        case SPLIT -> {
          int newOrder = m.present(page) && op.pickPresent() && m.order[page] > 0
              ? op.order() % m.order[page] // mostly a valid split
              : Math.min(o, 11);
          int before = m.order[page];
          String why = m.split(page, newOrder);
          collect(op.kind(), why == null, before);
          if (why == null) {
            fm.split(page, newOrder);
          } else {
            assertThrows(IllegalStateException.class, () -> fm.split(page, newOrder), why);
          }
        }
        case MERGE -> {
          int mo = m.present(page) && op.pickPresent()
              ? Math.max(1, Math.min(m.order[page] + 1 + op.order() % 3, maxOrder)) // likely a block split earlier
              : Math.max(1, o);
          if (n >> mo == 0) {
            assertThrows(IllegalArgumentException.class, () -> fm.merge(0, mo), "block past the end");
            break;
          }
          int index = m.present(page) && op.pickPresent() ? page & -(1 << mo) : (op.a() % (n >> mo)) << mo;
          if (index + (1 << mo) > n) {
            assertThrows(IllegalArgumentException.class, () -> fm.merge(index, mo), "block past the end");
            break;
          }
          String why = m.merge(index, mo);
          collect(op.kind(), why == null, mo);
          if (why == null) {
            fm.merge(index, mo);
          } else {
            assertThrows(IllegalStateException.class, () -> fm.merge(index, mo), why);
          }
        }
        case GET -> {
          if (m.present(page)) {
            fm.get(page);
            m.refs[page]++;
          } else {
            assertThrows(IllegalStateException.class, () -> fm.get(page));
          }
        }
        case PUT -> {
          int p = referenced(m, op.a(), page);
          if (m.refs[p] > 0) {
            fm.put(p);
            m.refs[p]--;
          } else {
            assertThrows(IllegalStateException.class, () -> fm.put(p));
          }
        }
        case MARK, CLEAR -> {
          boolean value = op.kind() == Kind.MARK;
          if (m.present(page)) {
            boolean changes = m.folioPrepared(page) != value;
            assertEquals(changes, value ? fm.markPrepared(page) : fm.clearPrepared(page));
            m.setPrepared(page, value);
          } else {
            assertThrows(IllegalStateException.class, () -> fm.markPrepared(page));
          }
        }
      }
      verify(fm, m, rnd);
    }
  }

  /** Shows in the report how often each path succeeds, for small (< 9) and huge orders. */
  private static void collect(Kind kind, boolean ok, int order) {
    Statistics.label("paths").collect(kind, ok ? "ok" : "refused", order >= 9 ? "huge" : "small");
  }

  /** A page, preferably a present one so that split/get/prepare mostly take the interesting path. */
  private static int page(FilemapModel m, int raw, boolean pickPresent) {
    int p = raw % m.n;
    if (pickPresent) {
      for (int i = 0; i < m.n; i++) {
        int q = (p + i) % m.n;
        if (m.present(q)) {
          return q;
        }
      }
    }
    return p;
  }

  private static int referenced(FilemapModel m, int raw, int fallback) {
    if (raw % 4 == 0) {
      return fallback; // sometimes try a page without references
    }
    for (int i = 0; i < m.n; i++) {
      int q = (raw + i) % m.n;
      if (m.refs[q] > 0) {
        return q;
      }
    }
    return fallback;
  }

  private static void verify(Filemap fm, FilemapModel m, Random rnd) {
    int n = m.n;
    for (int p = 0; p < n; p++) {
      assertEquals(m.order[p], fm.orderAt(p), "order of page " + p);
      assertEquals(m.start[p], fm.folioStart(p));
      assertEquals(m.present(p), fm.isPresent(p));
      assertEquals(m.present(p) && m.folioPrepared(p), fm.isPrepared(p), "prepared flag of page " + p);
      assertEquals(m.refs[p], fm.refcount(p));
    }
    List<Folio> all = m.folios(0, n);
    assertEquals(all, fm.folios(0, n));
    assertEquals(all.size(), fm.folioCount());
    assertEquals(m.presentPages(), fm.presentPages());
    for (int k = 0; k < 4; k++) {
      int s = rnd.nextInt(n);
      int e = s + 1 + rnd.nextInt(n - s);
      assertEquals(m.folios(s, e), fm.folios(s, e));
      assertEquals(m.firstReferenced(s, e), fm.firstReferenced(s, e));
      int p = rnd.nextInt(n);
      Optional<Folio> f = m.present(p)
          ? Optional.of(new Folio(m.start[p], m.order[p], m.sumRefs(m.start[p], m.order[p])))
          : Optional.empty();
      assertEquals(f, fm.folio(p));
    }
  }
}
