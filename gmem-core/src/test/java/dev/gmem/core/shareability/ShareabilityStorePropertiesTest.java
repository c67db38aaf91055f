package dev.gmem.core.shareability;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.Shareability;
import dev.gmem.api.ShareabilityRange;
import java.util.List;
import java.util.Random;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/** Random update sequences against a byte-per-page model. */
class ShareabilityStorePropertiesTest {

  enum Kind { SET, ABORT, FAIL }

  /** Positions are raw and reduced modulo the store size when applied. */
  record Op(Kind kind, int rawStart, int rawLength, int lengthClass, Shareability target, int failAfter) {}

  @Provide
  Arbitrary<List<Op>> ops() {
    Arbitrary<Kind> kind = Arbitraries.frequencyOf(
        net.jqwik.api.Tuple.of(8, Arbitraries.just(Kind.SET)),
        net.jqwik.api.Tuple.of(1, Arbitraries.just(Kind.ABORT)),
        net.jqwik.api.Tuple.of(2, Arbitraries.just(Kind.FAIL)));
    Arbitrary<Op> op = Combinators.combine(
            kind,
            Arbitraries.integers().between(0, 1 << 20),
            Arbitraries.integers().between(0, 1 << 20),
            Arbitraries.integers().between(0, 2),
            Arbitraries.of(Shareability.class),
            Arbitraries.integers().between(0, 40))
        .as(Op::new);
    return op.list().ofMinSize(1).ofMaxSize(60);
  }

  @Property(tries = 250)
  void updatesAgreeWithModel(@ForAll @IntRange(min = 1, max = 600) int n,
                             @ForAll Shareability initial,
                             @ForAll boolean tinyNodes,
                             @ForAll("ops") List<Op> ops,
                             @ForAll long seed) {
    Shape shape = tinyNodes ? new Shape(4, 4) : Shape.DEFAULT;
    CountdownInjector injector = new CountdownInjector();
    ShareabilityStore store = new ShareabilityStore(n, initial, injector, shape);
    StoreModel model = new StoreModel(n, initial);
    Random rnd = new Random(seed);
    verify(store, model, n, shape, rnd);

    for (Op op : ops) {
      int start = op.rawStart() % n;
      int maxLen = switch (op.lengthClass()) {
        case 0 -> 1;
        case 1 -> Math.min(8, n - start);
        default -> n - start;
      };
      int end = start + 1 + op.rawLength() % maxLen;
      long seqBefore = store.sequence();
      List<ShareabilityRange> before = store.ranges(0, n);
      switch (op.kind()) {
        case SET -> {
          store.set(start, end, op.target());
          model.set(start, end, op.target());
          assertNotEquals(seqBefore, store.sequence());
        }
        case ABORT -> {
          ShareabilityStore.Update u = store.prepare(start, end, op.target());
          assertEquals(!model.isUniform(start, end, op.target()), u.changes());
          u.abort();
          assertEquals(seqBefore, store.sequence());
          assertEquals(before, store.ranges(0, n));
        }
        case FAIL -> {
          injector.arm(op.failAfter());
          ShareabilityStore.Update u;
          try {
            u = store.prepare(start, end, op.target());
          } catch (GmemException e) {
            u = null;
            assertEquals(Errno.ENOMEM, e.errno());
            assertEquals(seqBefore, store.sequence());
            assertEquals(before, store.ranges(0, n));
          } finally {
            injector.disarm();
          }
          if (u != null) { // the preparation needed fewer allocations than the countdown
            u.commit();
            model.set(start, end, op.target());
          }
        }
      }
      verify(store, model, n, shape, rnd);
    }
  }

  private static void verify(ShareabilityStore store, StoreModel model, int n, Shape shape, Random rnd) {
    Invariants.check(store.currentState(), store.nrPages(), shape);
    for (int i = 0; i < n; i++) {
      assertEquals(model.get(i), store.get(i));
    }
    List<ShareabilityRange> all = model.ranges(0, n);
    assertEquals(all, store.ranges(0, n));
    assertEquals(all.size(), store.rangeCount());
    for (Shareability s : Shareability.values()) {
      assertEquals(model.count(s), store.countPages(s));
    }
    for (int k = 0; k < 6; k++) {
      int s = rnd.nextInt(n);
      int e = s + 1 + rnd.nextInt(k < 3 ? Math.min(4, n - s) : n - s);
      assertEquals(model.ranges(s, e), store.ranges(s, e));
      for (Shareability v : Shareability.values()) {
        assertEquals(model.isUniform(s, e, v), store.isUniform(s, e, v));
      }
    }
    // Budget: at most 24 bytes per run (plus a fixed overhead for tiny stores).
    assertTrue(shape != Shape.DEFAULT || store.estimatedBytes() <= 24L * store.rangeCount() + 256, "bytes per run");
  }
}
