package dev.gmem.alloc.hugetlb;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Split state without memory: staged 1 GiB splits, compactness, the budget. */
class SplitTrackerTest {

  @Test
  void aGigabytePageSplitsInStagesAndMergesBack() {
    MetadataBudget budget = new MetadataBudget(Long.MAX_VALUE);
    SplitTracker t = new SplitTracker(18, 9, 2, budget);
    assertEquals(9, t.splitOrder(18));
    assertEquals(0, t.splitOrder(9));
    t.markAllocated(1L << 18);
    assertEquals(-1, t.orderAt(0));
    assertEquals(18, t.orderAt((1L << 18) + 5));

    // Prepared together, as a conversion does: the piece's split is prepared before its parent's commits.
    var parent = t.prepareSplit(1L << 18, 18, 9);
    var piece = t.prepareSplit((1L << 18) + 3 * 512, 9, 0);
    parent.commit();
    piece.commit();
    assertEquals(9, t.orderAt(1L << 18));
    assertEquals(0, t.orderAt((1L << 18) + 3 * 512 + 7));
    assertEquals(9, t.orderAt((1L << 18) + 4 * 512));
    assertEquals(MetadataBudget.splitCost(18, 9) + MetadataBudget.splitCost(9, 0), budget.used());
    assertTrue(MetadataBudget.splitCost(18, 9) + MetadataBudget.splitCost(9, 0) < MetadataBudget.splitCost(18, 0) / 7,
        "staging needs a fraction of the metadata of a split straight to 4 KiB");

    t.prepareMerge((1L << 18) + 3 * 512, 9).commit();
    assertEquals(9, t.orderAt((1L << 18) + 3 * 512));
    t.prepareMerge(1L << 18, 18).commit();
    assertEquals(18, t.orderAt((1L << 18) + 3 * 512));
    assertEquals(0, budget.used());
    assertThrows(IllegalStateException.class, () -> t.prepareMerge(1L << 18, 18));
  }

  @Test
  void aGigabytePageSplitToFourKilobytesCostsFarLessThanSixteenBytesAPage() {
    SplitTracker t = new SplitTracker(18, 9, 1, new MetadataBudget(Long.MAX_VALUE));
    t.markAllocated(0);
    t.prepareSplit(0, 18, 9).commit();
    for (int p = 0; p < 512; p++) {
      t.prepareSplit(p * 512L, 9, 0).commit();
    }
    assertEquals(0, t.orderAt(12345));
    long perPage = t.estimatedBytes() * 1000 / (1L << 18);
    assertTrue(perPage <= 16_000, "tracking costs " + perPage / 1000.0 + " bytes per 4 KiB page");
  }

  @Test
  void partialFreesReturnTheHugePageWithTheLastPiece() {
    SplitTracker t = new SplitTracker(9, 0, 1, new MetadataBudget(Long.MAX_VALUE));
    t.markAllocated(0);
    t.prepareSplit(0, 9, 0).commit();
    for (int i = 0; i < 511; i++) {
      assertTrue(!t.freePart(i, 0));
    }
    assertTrue(t.freePart(511, 0));
    t.release(0);
    assertEquals(-1, t.orderAt(0));
  }
}
