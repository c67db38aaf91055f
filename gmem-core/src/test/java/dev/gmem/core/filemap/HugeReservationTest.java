package dev.gmem.core.filemap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * White-box: a huge add in progress (slots reserved, not yet live) is invisible to lookups, and an
 * add that meets it waits for the outcome instead of guessing — so exactly one of them wins.
 */
class HugeReservationTest {

  private static HugeFolio reserve(Filemap fm, long index, int order) {
    HugeFolio h = new HugeFolio(index, order, HugeFolio.RESERVING, false);
    for (long c = h.firstChunk(); c < h.endChunk(); c++) {
      fm.table().set(c, h);
    }
    return h;
  }

  @Test
  void reservationIsInvisibleAndWinsWhenItGoesLive() throws Exception {
    Filemap fm = new Filemap(2048);
    HugeFolio h = reserve(fm, 0, 10);
    assertFalse(fm.isPresent(5));
    assertEquals(-1, fm.orderAt(600));
    assertEquals(List.of(), fm.folios(0, 2048));

    CompletableFuture<Boolean> small = CompletableFuture.supplyAsync(() -> fm.add(5, 0));
    CompletableFuture<Boolean> huge = CompletableFuture.supplyAsync(() -> fm.add(512, 9));
    Thread.sleep(50);
    assertFalse(small.isDone(), "must wait for the reservation's outcome");
    assertFalse(huge.isDone(), "must wait for the reservation's outcome");
    h.setState(HugeFolio.LIVE);
    assertFalse(small.get(10, TimeUnit.SECONDS));
    assertFalse(huge.get(10, TimeUnit.SECONDS));
    assertEquals(10, fm.orderAt(1023));
  }

  @Test
  void releasedReservationLetsTheWaiterWin() throws Exception {
    Filemap fm = new Filemap(2048);
    HugeFolio h = reserve(fm, 1024, 10);
    CompletableFuture<Boolean> small = CompletableFuture.supplyAsync(() -> fm.add(1030, 1));
    Thread.sleep(50);
    assertFalse(small.isDone());
    h.setState(HugeFolio.DEAD);
    fm.table().set(h.firstChunk(), null);
    fm.table().set(h.firstChunk() + 1, null);
    assertTrue(small.get(10, TimeUnit.SECONDS));
    assertEquals(1, fm.orderAt(1031));
    assertEquals(1030, fm.folioStart(1031));
  }
}
