package dev.gmem.core.shareability;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.gmem.api.Shareability;
import dev.gmem.api.ShareabilityRange;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/**
 * One writer walks the store page by page from state A to state B and back; readers check that
 * every snapshot they take is one of the states the writer passes through, never a mix.
 */
class ShareabilityStoreConcurrencyTest {

  private static final int N = 2048;
  private static final int CYCLES = 64;

  /** A: runs of 7 shared / 5 private; B: alternating private / none. */
  private static byte a(int i) {
    return (byte) (i % 12 < 7 ? Shareability.SHARED.ordinal() : Shareability.PRIVATE.ordinal());
  }

  private static byte b(int i) {
    return (byte) ((i & 1) == 0 ? Shareability.PRIVATE.ordinal() : Shareability.NONE.ordinal());
  }

  /** The state after {@code commits} single-page updates: cycles alternate A→B and B→A. */
  private static byte[] stateAfter(long commits) {
    long cycle = commits / N;
    int k = (int) (commits % N);
    boolean towardsB = (cycle & 1) == 0;
    byte[] s = new byte[N];
    for (int i = 0; i < N; i++) {
      boolean done = i < k;
      s[i] = towardsB == done ? b(i) : a(i);
    }
    return s;
  }

  private static boolean isPrefixMix(byte[] seen, boolean prefixB) {
    int i = 0;
    while (i < N && seen[i] == (prefixB ? b(i) : a(i))) {
      i++;
    }
    while (i < N && seen[i] == (prefixB ? a(i) : b(i))) {
      i++;
    }
    return i == N;
  }

  @Test
  void readersNeverSeeTornStates() throws Exception {
    ShareabilityStore store = new ShareabilityStore(N, Shareability.SHARED);
    for (int i = 0; i < N; i++) {
      store.set(i, i + 1, Shareability.values()[a(i)]);
    }
    long base = store.sequence();
    AtomicBoolean done = new AtomicBoolean();
    int readers = Math.max(2, Runtime.getRuntime().availableProcessors() - 1);
    ExecutorService pool = Executors.newFixedThreadPool(readers + 1, r -> {
      Thread t = new Thread(r, "store-test");
      t.setDaemon(true);
      return t;
    });
    try {
      Future<?> writer = pool.submit(() -> {
        try {
          for (int c = 0; c < CYCLES; c++) {
            for (int i = 0; i < N; i++) {
              byte target = (c & 1) == 0 ? b(i) : a(i);
              store.set(i, i + 1, Shareability.values()[target]);
            }
          }
        } finally {
          done.set(true);
        }
      });
      Future<?>[] rs = new Future<?>[readers];
      for (int r = 0; r < readers; r++) {
        int id = r;
        rs[r] = pool.submit(() -> {
          long lastSeq = -1;
          int exactChecks = 0;
          int probe = id;
          while (!done.get() || exactChecks == 0) {
            long seq1 = store.sequence();
            assertTrue(seq1 >= lastSeq, "sequence went backwards");
            lastSeq = seq1;
            List<ShareabilityRange> snap = store.ranges(0, N);
            long seq2 = store.sequence();
            // Cover [0, N) with merged neighbours.
            long expectStart = 0;
            Shareability prev = null;
            for (ShareabilityRange run : snap) {
              assertEquals(expectStart, run.start());
              assertTrue(run.shareability() != prev, "unmerged neighbours");
              prev = run.shareability();
              expectStart = run.end();
            }
            assertEquals(N, expectStart);
            byte[] seen = StoreModel.expand(snap, N);
            if (!isPrefixMix(seen, true) && !isPrefixMix(seen, false)) {
              fail("snapshot is not a state the writer passed through");
            }
            if (seq1 == seq2) { // the mmu_invalidate_retry pattern: a stable sequence pins the exact state
              assertArrayEquals(stateAfter((seq1 - base) / 2), seen);
              exactChecks++;
            }
            probe = (probe * 31 + 7) % N;
            assertNotNull(store.get(probe));
          }
        });
      }
      writer.get(60, TimeUnit.SECONDS);
      for (Future<?> r : rs) {
        r.get(60, TimeUnit.SECONDS);
      }
    } finally {
      pool.shutdownNow();
    }
  }
}
