package dev.gmem.core.filemap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

/** {@link Filemap#addPages}: one chunk update for many order-0 folios, with the exact mask of those it added. */
class FilemapAddPagesTest {

  @Test
  void addsOnlyFreePagesAndSaysWhich() {
    Filemap fm = new Filemap(2048);
    assertTrue(fm.add(67, 0), "a page another fault took first");
    assertTrue(fm.add(72, 3), "and a folio of order 3 (pages 72..79)");
    long want = -1L; // pages 64..127
    long added = fm.addPages(64, want);
    long expected = want & ~(1L << 3) & ~(0xffL << 8);
    assertEquals(expected, added, "every wanted page but the present ones");
    assertEquals(1 + 8 + Long.bitCount(expected), fm.presentPages());
    assertEquals(2 + Long.bitCount(expected), fm.folioCount(), "each added page is one order-0 folio");
    assertEquals(0, fm.orderAt(64));
    assertEquals(3, fm.orderAt(75), "the order-3 folio is untouched");
    assertEquals(0, fm.addPages(64, want), "a second add takes nothing");
  }

  @Test
  void fillsAChunkToItsSharedConstant() {
    Filemap fm = new Filemap(512);
    for (int i = 0; i < 512; i += 64) {
      assertEquals(-1L, fm.addPages(i, -1L));
    }
    assertEquals(512, fm.presentPages());
    assertEquals(0, fm.orderAt(511));
  }

  @Test
  void rejectsBadArguments() {
    Filemap fm = new Filemap(600);
    assertThrows(IllegalArgumentException.class, () -> fm.addPages(500, 1L << 20), "crosses a chunk");
    assertThrows(IndexOutOfBoundsException.class, () -> fm.addPages(590, 1L << 20), "past the end");
    assertThrows(IndexOutOfBoundsException.class, () -> fm.addPages(-1, 1));
    assertEquals(0, fm.addPages(0, 0), "nothing wanted, nothing added");
    assertEquals(0, fm.presentPages(), "a refused call changed nothing");
  }

  /** As many single adds in page order: same pages present, same folios. */
  @Property(tries = 200)
  void equalsSingleAdds(@ForAll long want, @ForAll long before, @ForAll @IntRange(min = 0, max = 448) int off) {
    Filemap a = new Filemap(512);
    Filemap b = new Filemap(512);
    for (int k = 0; k < 64; k++) {
      if ((before & (1L << k)) != 0) {
        a.add(off + k, 0);
        b.add(off + k, 0);
      }
    }
    long added = a.addPages(off, want);
    long expected = 0;
    for (int k = 0; k < 64; k++) {
      if ((want & (1L << k)) != 0 && b.add(off + k, 0)) {
        expected |= 1L << k;
      }
    }
    assertEquals(expected, added);
    assertEquals(b.presentPages(), a.presentPages());
    assertEquals(b.folioCount(), a.folioCount());
    for (int i = 0; i < 512; i++) {
      assertEquals(b.orderAt(i), a.orderAt(i));
    }
  }
}
