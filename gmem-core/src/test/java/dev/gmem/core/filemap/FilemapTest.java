package dev.gmem.core.filemap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Folio;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** Contracts of lookups, remove, split, merge, prepared flags, references and memory. */
class FilemapTest {

  private static final int GIB_PAGES = 1 << 18;
  private static final long BUDGET_PER_PAGE = 16;

  @Test
  void addAndLookup() {
    Filemap fm = new Filemap(2048);
    assertTrue(fm.add(8, 3));
    assertFalse(fm.add(12, 2), "overlaps");
    assertFalse(fm.add(0, 4), "contains");
    assertTrue(fm.add(1024, 10));
    assertEquals(3, fm.orderAt(13));
    assertEquals(8, fm.folioStart(15));
    assertEquals(-1, fm.orderAt(7));
    assertEquals(-1, fm.folioStart(16));
    assertEquals(10, fm.orderAt(2047));
    assertEquals(Optional.of(new Folio(1024, 10, 0)), fm.folio(1500));
    assertEquals(Optional.empty(), fm.folio(0));
    assertEquals(List.of(new Folio(8, 3, 0), new Folio(1024, 10, 0)), fm.folios(0, 2048));
    assertEquals(List.of(new Folio(1024, 10, 0)), fm.folios(2000, 2001));
    assertEquals(1032, fm.presentPages());
    assertEquals(2, fm.folioCount());
  }

  @Test
  void rejectsBadArguments() {
    Filemap fm = new Filemap(1000);
    assertThrows(IllegalArgumentException.class, () -> fm.add(4, 3), "unaligned");
    assertThrows(IllegalArgumentException.class, () -> fm.add(512, 9), "past the end");
    assertThrows(IllegalArgumentException.class, () -> fm.add(0, 19));
    assertThrows(IllegalArgumentException.class, () -> fm.add(0, -1));
    assertThrows(IndexOutOfBoundsException.class, () -> fm.orderAt(1000));
    assertThrows(IndexOutOfBoundsException.class, () -> fm.isPresent(-1));
    assertThrows(IllegalArgumentException.class, () -> fm.folios(5, 5));
    assertThrows(IllegalArgumentException.class, () -> fm.merge(0, 0));
    assertThrows(IllegalArgumentException.class, () -> fm.merge(2, 2));
    assertThrows(IllegalArgumentException.class, () -> new Filemap(0));
    assertThrows(IllegalArgumentException.class, () -> new Filemap(Filemap.MAX_PAGES + 1));
  }

  @Test
  void removeTakesWholeFoliosOnlyAndHandsOverReferences() {
    Filemap fm = new Filemap(4096);
    fm.add(0, 9);
    fm.add(512, 0);
    fm.add(514, 1);
    fm.add(1024, 10);
    fm.get(515);
    fm.get(515);
    fm.get(1030);
    // [256, 1500): the 2 MiB folio at 0 and the 4 MiB one at 1024 straddle the ends.
    List<Folio> removed = fm.remove(256, 1500);
    assertEquals(List.of(new Folio(512, 0, 0), new Folio(514, 1, 2)), removed);
    assertEquals(List.of(new Folio(0, 9, 0), new Folio(1024, 10, 1)), fm.folios(256, 1500), "straddlers stay");
    assertEquals(0, fm.refcount(515));
    assertThrows(IllegalStateException.class, () -> fm.put(515), "references left with the folio");
    assertEquals(List.of(new Folio(1024, 10, 1)), fm.remove(0, 4096).subList(1, 2));
    assertEquals(0, fm.presentPages());
    assertEquals(0, fm.folioCount());
    assertEquals(-1, fm.firstReferenced(0, 4096));
  }

  @Test
  void splitKeepsPreparedAndReferencesMergeAndsPrepared() {
    Filemap fm = new Filemap(1024);
    fm.add(0, 10);
    assertTrue(fm.markPrepared(100));
    assertFalse(fm.markPrepared(0), "already prepared");
    fm.get(700);
    fm.split(3, 9);
    assertEquals(List.of(new Folio(0, 9, 0), new Folio(512, 9, 1)), fm.folios(0, 1024));
    assertTrue(fm.isPrepared(0) && fm.isPrepared(1023));
    fm.split(512, 2);
    assertEquals(129, fm.folioCount());
    assertTrue(fm.isPrepared(700));
    assertEquals(1, fm.refcount(700));
    assertEquals(Optional.of(new Folio(700, 2, 1)), fm.folio(701));
    assertTrue(fm.clearPrepared(516));
    fm.merge(512, 4);
    assertFalse(fm.isPrepared(512), "one part was not prepared");
    fm.merge(0, 10);
    assertEquals(List.of(new Folio(0, 10, 1)), fm.folios(0, 1024));
    assertFalse(fm.isPrepared(0));
    assertEquals(1, fm.folioCount());

    fm.split(0, 0);
    for (int i = 0; i < 1024; i++) {
      fm.markPrepared(i);
    }
    fm.merge(0, 10);
    assertTrue(fm.isPrepared(5), "all parts prepared");
  }

  @Test
  void structuralPreconditions() {
    Filemap fm = new Filemap(2048);
    assertThrows(IllegalStateException.class, () -> fm.split(0, 0), "absent");
    fm.add(0, 9);
    assertThrows(IllegalStateException.class, () -> fm.split(0, 9), "not smaller");
    assertThrows(IllegalStateException.class, () -> fm.merge(0, 9), "already that order");
    assertThrows(IllegalStateException.class, () -> fm.merge(0, 10), "second half missing");
    assertThrows(IllegalStateException.class, () -> fm.merge(0, 3), "inside a larger folio");
    fm.add(1024, 0);
    assertThrows(IllegalStateException.class, () -> fm.merge(1024, 1), "page 1025 missing");
    assertThrows(IllegalStateException.class, () -> fm.get(1025));
    assertThrows(IllegalStateException.class, () -> fm.markPrepared(1025));
    assertThrows(IllegalStateException.class, () -> fm.put(1024));
    assertEquals(513, fm.presentPages());
  }

  /** A 1 GiB folio split to 4 KiB pages and merged back; memory stays within 16 bytes per page. */
  @Test
  void gigabyteFolioSplitToBasePagesAndMergedBack() {
    Filemap fm = new Filemap(GIB_PAGES);
    assertTrue(fm.add(0, 18));
    fm.markPrepared(0);
    fm.get(12345);
    long whole = fm.estimatedBytes();
    assertEquals(List.of(new Folio(0, 18, 1)), fm.folios(0, GIB_PAGES));

    fm.split(0, 0);
    assertEquals(GIB_PAGES, fm.folioCount());
    assertEquals(GIB_PAGES, fm.presentPages());
    List<Folio> pages = fm.folios(0, GIB_PAGES);
    assertEquals(GIB_PAGES, pages.size());
    for (int i = 0; i < GIB_PAGES; i++) {
      assertEquals(new Folio(i, 0, i == 12345 ? 1 : 0), pages.get(i));
    }
    assertTrue(fm.isPrepared(GIB_PAGES - 1));
    long split = fm.estimatedBytes();
    assertTrue(split <= BUDGET_PER_PAGE * GIB_PAGES, "split: " + split + " bytes");

    // Make every chunk distinct (no shared constants): the worst case for memory.
    for (int i = 0; i < GIB_PAGES; i += 2) {
      fm.clearPrepared(i);
    }
    long worst = fm.estimatedBytes();
    assertTrue(worst <= BUDGET_PER_PAGE * GIB_PAGES, "mixed: " + worst + " bytes");
    assertTrue(worst / GIB_PAGES <= 2, "about a byte per page: " + worst);

    fm.merge(0, 18);
    assertEquals(List.of(new Folio(0, 18, 1)), fm.folios(0, GIB_PAGES));
    assertFalse(fm.isPrepared(0), "not every part was prepared");
    assertEquals(1, fm.folioCount());
    assertEquals(whole, fm.estimatedBytes());
    assertTrue(whole < 4096, "one folio: " + whole);
  }

  @Test
  void gigabyteOfBasePagesAddedOneByOne() {
    Filemap fm = new Filemap(GIB_PAGES);
    for (int i = 0; i < GIB_PAGES; i++) {
      assertTrue(fm.add(i, 0));
    }
    assertEquals(GIB_PAGES, fm.folioCount());
    assertTrue(fm.estimatedBytes() <= BUDGET_PER_PAGE * GIB_PAGES);
    fm.merge(0, 18);
    assertEquals(List.of(new Folio(0, 18, 0)), fm.folios(0, GIB_PAGES));
  }

  @Test
  void addAllAddsARunOfFoliosAsAddsOneByOneWould() {
    Filemap fm = new Filemap(2048);
    assertEquals(512, fm.addAll(0, 0, 512));
    assertTrue(fm.add(600, 2));
    assertEquals(63, fm.addAll(512, 2, 64), "the folio at 600 is present already");
    assertEquals(List.of(new Folio(0, 0, 0), new Folio(1, 0, 0)), fm.folios(0, 2));
    assertEquals(List.of(new Folio(596, 2, 0), new Folio(600, 2, 0), new Folio(604, 2, 0)), fm.folios(599, 605));
    assertEquals(-1, fm.orderAt(768));
    assertEquals(2, fm.addAll(1024, 9, 2));
    assertEquals(9, fm.orderAt(2047));
    assertEquals(0, fm.addAll(1024, 0, 3), "inside a present huge folio");
    assertEquals(512 + 1 + 63 + 2, fm.folioCount());
    assertEquals(512 + 256 + 1024, fm.presentPages());
    assertThrows(IllegalArgumentException.class, () -> fm.addAll(2, 2, 1), "unaligned");
    assertThrows(IllegalArgumentException.class, () -> fm.addAll(2040, 2, 3), "past the end");
    assertThrows(IllegalArgumentException.class, () -> fm.addAll(0, 0, 0), "no folio");
  }

  @Test
  void gigabyteSplitToTwoMegabytesAndBack() {
    Filemap fm = new Filemap(2L * GIB_PAGES);
    fm.add(GIB_PAGES, 18);
    fm.split(GIB_PAGES + 5, 9);
    assertEquals(512, fm.folioCount());
    fm.split(GIB_PAGES + 512, 0);
    assertEquals(1023, fm.folioCount());
    assertEquals(0, fm.orderAt(GIB_PAGES + 1000));
    assertEquals(9, fm.orderAt(GIB_PAGES + 1024));
    fm.merge(GIB_PAGES + 512, 9);
    fm.merge(GIB_PAGES, 18);
    assertEquals(List.of(new Folio(GIB_PAGES, 18, 0)), fm.folios(0, 2L * GIB_PAGES));
  }

  @Test
  void hugeSparseFile() {
    long n = Filemap.MAX_PAGES;
    Filemap fm = new Filemap(n);
    long at = 1L << 51;
    assertTrue(fm.add(at, 18));
    assertTrue(fm.add(n - 1, 0));
    assertEquals(18, fm.orderAt(at + 77));
    assertEquals(List.of(new Folio(at, 18, 0), new Folio(n - 1, 0, 0)), fm.folios(0, n));
    fm.get(n - 1);
    assertEquals(n - 1, fm.firstReferenced(0, n));
    assertEquals(List.of(new Folio(at, 18, 0)), fm.remove(0, n - 1));
    assertEquals(1, fm.presentPages());
    assertTrue(fm.estimatedBytes() < 64 * 1024);
  }

  @Test
  void firstReferencedFindsTheFirstPinnedPage() {
    Filemap fm = new Filemap(4096);
    fm.add(0, 12);
    fm.get(3000);
    fm.get(100);
    assertEquals(100, fm.firstReferenced(0, 4096));
    assertEquals(3000, fm.firstReferenced(101, 4096));
    assertEquals(-1, fm.firstReferenced(101, 3000));
    assertEquals(2, fm.folio(0).orElseThrow().refcount());
    fm.put(100);
    assertEquals(3000, fm.firstReferenced(0, 4096));
  }
}
