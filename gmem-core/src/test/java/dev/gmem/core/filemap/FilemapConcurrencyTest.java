package dev.gmem.core.filemap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Folio;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.RepeatedTest;

/**
 * Threads add the same pool of overlapping folios (identical ones, and ones of other orders that
 * contain or straddle them) in different orders while readers look pages up: exactly one add
 * wins per page, a loser always overlaps a winner, and huge folios appear all at once.
 */
class FilemapConcurrencyTest {

  private static final int N = 8192;
  private static final int THREADS = 4;
  private static final int[] ORDERS = {0, 0, 0, 2, 5, 8, 9, 10, 11, 12};

  private ExecutorService pool;

  @BeforeEach
  void start() {
    // Daemon threads: a bug that makes an add spin forever fails the test instead of hanging the build.
    pool = Executors.newFixedThreadPool(THREADS + 2, r -> {
      Thread t = new Thread(r, "filemap-test");
      t.setDaemon(true);
      return t;
    });
  }

  @AfterEach
  void stop() {
    pool.shutdownNow();
  }

  record Cand(int index, int order) {
    boolean overlaps(Cand o) {
      return index < o.index + (1 << o.order) && o.index < index + (1 << order);
    }
  }

  @RepeatedTest(20)
  void exactlyOneAddWinsPerPage() throws Exception {
    Random rnd = new Random();
    List<Cand> cands = new ArrayList<>();
    for (int i = 0; i < 600; i++) {
      int o = ORDERS[rnd.nextInt(ORDERS.length)];
      cands.add(new Cand(rnd.nextInt(N >> o) << o, o));
    }
    Filemap fm = new Filemap(N);
    AtomicIntegerArray wins = new AtomicIntegerArray(cands.size());
    CountDownLatch go = new CountDownLatch(1);
    AtomicBoolean addersDone = new AtomicBoolean();

    List<Future<?>> adders = new ArrayList<>();
    for (int t = 0; t < THREADS; t++) {
      long seed = rnd.nextLong();
      adders.add(pool.submit(() -> {
        List<Integer> order = new ArrayList<>();
        for (int i = 0; i < cands.size(); i++) {
          order.add(i);
        }
        Collections.shuffle(order, new Random(seed));
        go.await();
        for (int i : order) {
          Cand c = cands.get(i);
          if (fm.add(c.index(), c.order())) {
            wins.incrementAndGet(i);
          }
        }
        return null;
      }));
    }
    List<long[]> seen = Collections.synchronizedList(new ArrayList<>());
    List<Future<?>> readers = new ArrayList<>();
    for (int r = 0; r < 2; r++) {
      long seed = rnd.nextLong();
      readers.add(pool.submit(() -> {
        Random rr = new Random(seed);
        go.await();
        while (!addersDone.get() && !Thread.currentThread().isInterrupted()) {
          // Mostly probe the first page of a huge candidate: that is where a partly visible folio shows.
          Cand probe = cands.get(rr.nextInt(cands.size()));
          int p = probe.order() >= 9 && rr.nextInt(4) != 0 ? probe.index() : rr.nextInt(N);
          int o = fm.orderAt(p);
          if (o >= 0) {
            long s = p & -(1L << o);
            long last = s + (1L << o) - 1;
            // Once a folio is visible, all of its pages are.
            assertEquals(o, fm.orderAt(last), "folio at " + s + " visible in part");
            assertEquals(s, fm.folioStart(s));
            seen.add(new long[] {p, o});
          }
        }
        return null;
      }));
    }
    go.countDown();
    try {
      for (Future<?> f : adders) {
        f.get(20, TimeUnit.SECONDS);
      }
    } finally {
      addersDone.set(true); // readers stop even when an adder failed
    }
    for (Future<?> f : readers) {
      f.get(20, TimeUnit.SECONDS);
    }

    // A candidate may appear several times in the pool; identical duplicates share one winner.
    List<Cand> winners = new ArrayList<>();
    for (int i = 0; i < cands.size(); i++) {
      assertTrue(wins.get(i) <= 1, "two adds of one folio both won");
      if (wins.get(i) == 1) {
        winners.add(cands.get(i));
      }
    }
    for (int i = 0; i < winners.size(); i++) {
      for (int j = i + 1; j < winners.size(); j++) {
        assertTrue(!winners.get(i).overlaps(winners.get(j)), "overlapping winners " + winners.get(i) + " " + winners.get(j));
      }
    }
    for (int i = 0; i < cands.size(); i++) {
      if (wins.get(i) == 0) {
        Cand loser = cands.get(i);
        assertTrue(winners.stream().anyMatch(loser::overlaps), "add of " + loser + " failed without a conflict");
      }
    }
    winners.sort(Comparator.comparingInt(Cand::index));
    List<Folio> expected = winners.stream().map(c -> new Folio(c.index(), c.order(), 0)).toList();
    assertEquals(expected, fm.folios(0, N));
    assertEquals(winners.size(), fm.folioCount());
    assertEquals(winners.stream().mapToLong(c -> 1L << c.order()).sum(), fm.presentPages());
    for (long[] s : seen) {
      assertEquals(s[1], fm.orderAt(s[0]), "a page seen present changed");
    }

    // Racing markPrepared: exactly one caller flips each folio; racing get/put balance out.
    AtomicIntegerArray flips = new AtomicIntegerArray(expected.size());
    CountDownLatch go2 = new CountDownLatch(1);
    List<Future<?>> markers = new ArrayList<>();
    for (int t = 0; t < THREADS; t++) {
      markers.add(pool.submit(() -> {
        go2.await();
        for (int i = 0; i < expected.size(); i++) {
          long idx = expected.get(i).index() + expected.get(i).nrPages() - 1;
          if (fm.markPrepared(idx)) {
            flips.incrementAndGet(i);
          }
          fm.get(idx);
          fm.put(idx);
        }
        return null;
      }));
    }
    go2.countDown();
    for (Future<?> f : markers) {
      f.get(20, TimeUnit.SECONDS);
    }
    for (int i = 0; i < expected.size(); i++) {
      assertEquals(1, flips.get(i), "markPrepared winners for " + expected.get(i));
      assertTrue(fm.isPrepared(expected.get(i).index()));
    }
    assertEquals(-1, fm.firstReferenced(0, N));
  }
}
