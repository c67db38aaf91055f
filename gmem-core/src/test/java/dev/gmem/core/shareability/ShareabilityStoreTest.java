package dev.gmem.core.shareability;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.Shareability;
import dev.gmem.api.ShareabilityRange;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Contracts of the two-phase protocol, argument checks, and the alternating-pages workload. */
class ShareabilityStoreTest {

  private static final Shareability S = Shareability.SHARED;
  private static final Shareability P = Shareability.PRIVATE;
  private static final Shareability N = Shareability.NONE;

  @Test
  void startsUniform() {
    ShareabilityStore store = new ShareabilityStore(100, P);
    assertEquals(List.of(new ShareabilityRange(0, 100, P)), store.ranges(0, 100));
    assertEquals(1, store.rangeCount());
    assertEquals(100, store.countPages(P));
    assertEquals(0, store.countPages(S));
    assertTrue(store.isUniform(0, 100, P));
  }

  @Test
  void mergesNeighbours() {
    ShareabilityStore store = new ShareabilityStore(100, S);
    store.set(10, 20, P);
    store.set(30, 40, P);
    assertEquals(5, store.rangeCount());
    store.set(20, 30, P);
    assertEquals(List.of(new ShareabilityRange(0, 10, S), new ShareabilityRange(10, 40, P), new ShareabilityRange(40, 100, S)),
        store.ranges(0, 100));
    store.set(0, 100, S);
    assertEquals(1, store.rangeCount());
  }

  @Test
  void commitPublishesAndAbortDiscards() {
    ShareabilityStore store = new ShareabilityStore(64, S);
    long seq = store.sequence();
    ShareabilityStore.Update u = store.prepare(8, 16, P);
    assertTrue(u.changes());
    assertEquals(S, store.get(8), "nothing visible before commit");
    assertEquals(seq, store.sequence());
    u.commit();
    assertEquals(P, store.get(8));
    assertTrue(store.sequence() > seq);
    u.abort(); // no-op after commit: safe in finally blocks
    assertEquals(P, store.get(8));

    ShareabilityStore.Update v = store.prepare(0, 64, N);
    v.abort();
    assertThrows(IllegalStateException.class, v::commit);
    assertEquals(P, store.get(8));
  }

  @Test
  void oneUpdateAtATime() {
    ShareabilityStore store = new ShareabilityStore(64, S);
    ShareabilityStore.Update u = store.prepare(0, 1, P);
    assertThrows(IllegalStateException.class, () -> store.prepare(1, 2, P));
    u.commit();
    assertThrows(IllegalStateException.class, u::commit, "double commit");
    store.prepare(1, 2, P).commit();
  }

  @Test
  void noOpUpdateStillBumpsSequence() {
    ShareabilityStore store = new ShareabilityStore(64, S);
    ShareabilityStore.Update u = store.prepare(0, 64, S);
    assertFalse(u.changes());
    long seq = store.sequence();
    u.commit();
    assertTrue(store.sequence() > seq);
    assertEquals(1, store.rangeCount());
  }

  /** Fails each allocation site of one preparation in turn: every failure leaves no trace. */
  @Test
  void failureAtEveryAllocationSiteChangesNothing() {
    CountdownInjector injector = new CountdownInjector();
    Shape tiny = new Shape(4, 4);
    ShareabilityStore store = new ShareabilityStore(4096, S, injector, tiny);
    for (int i = 0; i < 4096; i += 3) {
      store.set(i, i + 1, (i & 1) == 0 ? P : N); // a deep tree, so the splice touches many levels
    }
    long before = injector.calls();
    store.prepare(100, 3000, P).abort();
    int sites = (int) (injector.calls() - before);
    assertTrue(sites > 10, "allocation sites reached: " + sites);
    List<ShareabilityRange> snapshot = store.ranges(0, 4096);
    long seq = store.sequence();
    for (int k = 0; k < sites; k++) {
      injector.arm(k);
      GmemException e = assertThrows(GmemException.class, () -> store.prepare(100, 3000, P));
      injector.disarm();
      assertEquals(Errno.ENOMEM, e.errno());
      assertEquals(snapshot, store.ranges(0, 4096));
      assertEquals(seq, store.sequence());
      Invariants.check(store.currentState(), store.nrPages(), tiny);
    }
    store.set(100, 3000, P); // nothing left pending
    assertTrue(store.isUniform(100, 3000, P));
    Invariants.check(store.currentState(), store.nrPages(), tiny);
  }

  @Test
  void rejectsBadArguments() {
    ShareabilityStore store = new ShareabilityStore(64, S);
    assertThrows(IndexOutOfBoundsException.class, () -> store.get(64));
    assertThrows(IndexOutOfBoundsException.class, () -> store.get(-1));
    assertThrows(IllegalArgumentException.class, () -> store.ranges(3, 3));
    assertThrows(IllegalArgumentException.class, () -> store.prepare(0, 65, P));
    assertThrows(IllegalArgumentException.class, () -> store.isUniform(-1, 2, P));
    assertThrows(IllegalArgumentException.class, () -> new ShareabilityStore(0, S));
    assertThrows(IllegalArgumentException.class, () -> new ShareabilityStore(Entries.MAX_PAGES + 1, S));
  }

  @Test
  void largestSize() {
    long n = Entries.MAX_PAGES;
    ShareabilityStore store = new ShareabilityStore(n, P);
    store.set(n - 1, n, S);
    store.set(1L << 50, (1L << 50) + 1, N);
    assertEquals(S, store.get(n - 1));
    assertEquals(N, store.get(1L << 50));
    assertEquals(n - 2, store.countPages(P));
    assertEquals(4, store.rangeCount());
  }

  /**
   * Every page of a 1 GiB file converted one at a time, alternating targets: each update adds runs
   * at the end. (Speed is benchmarked elsewhere; here only the result is checked.)
   */
  @Test
  void alternatingSinglePageUpdates() {
    int n = 1 << 18;
    ShareabilityStore store = new ShareabilityStore(n, S);
    for (int i = 0; i < n; i++) {
      store.set(i, i + 1, (i & 1) == 0 ? P : N);
    }
    assertEquals(n, store.rangeCount());
    assertEquals(n / 2, store.countPages(P));
    assertEquals(n / 2, store.countPages(N));
    for (int i = 0; i < n; i++) {
      assertEquals((i & 1) == 0 ? P : N, store.get(i));
    }
    List<ShareabilityRange> all = store.ranges(0, n);
    assertEquals(n, all.size());
    for (int i = 0; i < n; i++) {
      assertEquals(new ShareabilityRange(i, i + 1, (i & 1) == 0 ? P : N), all.get(i));
    }
    Invariants.check(store.currentState(), store.nrPages(), Shape.DEFAULT);
    long perRun = store.estimatedBytes() / n;
    assertTrue(perRun <= 24, "bytes per run: " + perRun);

    // Every other page back to shared, also one at a time, then the rest: one run again.
    for (int i = 0; i < n; i += 2) {
      store.set(i, i + 1, N);
    }
    assertEquals(1, store.rangeCount());
    assertEquals(n, store.countPages(N));
    Invariants.check(store.currentState(), store.nrPages(), Shape.DEFAULT);
  }

  /** Every other page converted (the brief's benchmark shape, at the scale of 2 GiB). */
  @Test
  void everyOtherPageOfTwoGiB() {
    int n = 1 << 19;
    ShareabilityStore store = new ShareabilityStore(n, S);
    for (int i = 1; i < n; i += 2) {
      store.set(i, i + 1, P);
    }
    assertEquals(n, store.rangeCount());
    assertEquals(n / 2, store.countPages(P));
    Invariants.check(store.currentState(), store.nrPages(), Shape.DEFAULT);
  }
}
