package dev.gmem.api.spi;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** GmemPage's written-out equals and hashCode keep the record's value semantics: arches key maps by it. */
class GmemPageTest {

  @Test
  void pagesAreEqualExactlyWhenInodeAndIndexAre() {
    GmemPage p = new GmemPage(7, 3);
    assertEquals(new GmemPage(7, 3), p);
    assertEquals(new GmemPage(7, 3).hashCode(), p.hashCode());
    assertEquals(p, new GmemPage(7, 0).plus(3));
    assertNotEquals(new GmemPage(8, 3), p);
    assertNotEquals(new GmemPage(7, 4), p);
    assertNotEquals(new GmemPage(3, 7), p, "inode and index are not interchangeable");
    assertNotEquals(p, "ino 7 page 3");
    assertNotEquals(p, null);
  }

  @Test
  void aHashSetOfPagesFindsEveryPageOnceAcrossInodes() {
    Set<GmemPage> pages = new HashSet<>();
    for (long ino = 1; ino <= 4; ino++) {
      for (long i = 0; i < 512; i++) {
        pages.add(new GmemPage(ino, i));
        pages.add(new GmemPage(ino, 0).plus(i)); // the same page again
      }
    }
    assertEquals(4 * 512, pages.size());
    assertEquals(true, pages.contains(new GmemPage(3, 511)));
    assertEquals(false, pages.contains(new GmemPage(5, 0)));
  }
}
