package dev.gmem.core.filemap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Folio;
import java.util.ArrayList;
import java.util.List;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

class FilemapRangeOpsTest {

  @Property(tries = 300)
  void forEachFolioVisitsExactlyWhatFoliosReturns(@ForAll @IntRange(min = 0, max = 2048) int start, @ForAll @IntRange(min = 1, max = 2048) int len) {
    Filemap m = populated();
    long end = Math.min(4096, start + len);
    List<Folio> visited = new ArrayList<>();
    m.forEachFolio(start, end, (index, order) -> visited.add(new Folio(index, order, 0)));
    List<Folio> expected = m.folios(start, end).stream().map(f -> new Folio(f.index(), f.order(), 0)).toList();
    assertEquals(expected, visited);
  }

  @Property(tries = 300)
  void presentRunsAreTheMaximalRunsOfPresentPages(@ForAll @IntRange(min = 0, max = 4000) int start, @ForAll @IntRange(min = 1, max = 4096) int len) {
    Filemap m = populated();
    long end = Math.min(4096, start + len);
    List<long[]> runs = new ArrayList<>();
    m.forEachPresentRun(start, end, (s, e) -> runs.add(new long[] {s, e}));
    List<long[]> expected = new ArrayList<>();
    for (long i = start; i < end; i++) {
      if (m.isPresent(i)) {
        if (!expected.isEmpty() && expected.get(expected.size() - 1)[1] == i) {
          expected.get(expected.size() - 1)[1] = i + 1;
        } else {
          expected.add(new long[] {i, i + 1});
        }
      }
    }
    assertEquals(expected.stream().map(java.util.Arrays::toString).toList(), runs.stream().map(java.util.Arrays::toString).toList());
  }

  @Test
  void clearPreparedTouchesOnlyFoliosWhollyInside() {
    Filemap m = populated();
    for (Folio f : m.folios(0, 4096)) {
      m.markPrepared(f.index());
    }
    m.clearPrepared(6, 1030); // order-2 folio at 4 straddles the start; the 2 MiB folio at 1024 straddles the end
    assertTrue(m.isPrepared(4), "straddling small folio keeps its flag");
    assertFalse(m.isPrepared(8));
    assertFalse(m.isPrepared(600));
    assertTrue(m.isPrepared(1024), "straddling huge folio keeps its flag");
    assertTrue(m.isPrepared(3000));
    m.clearPrepared(0, 4096);
    for (Folio f : m.folios(0, 4096)) {
      assertFalse(m.isPrepared(f.index()), "page " + f.index());
    }
  }

  /** Order-0 pages, an order-2 folio at 4, a 2 MiB folio at 1024, more 4 KiB pages above. */
  private static Filemap populated() {
    Filemap m = new Filemap(4096);
    for (int i = 0; i < 4; i++) {
      m.add(i, 0);
    }
    m.add(4, 2);
    for (int i = 8; i < 1024; i += 3) {
      m.add(i, 0);
    }
    m.add(1024, 9);
    for (int i = 1536; i < 4096; i++) {
      m.add(i, 0);
    }
    return m;
  }
}
