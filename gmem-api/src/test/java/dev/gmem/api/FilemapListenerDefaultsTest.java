package dev.gmem.api;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.gmem.api.spi.FilemapListener;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** A listener written against 0.1 (folioAdded only) hears every folio of a batched add, in index order. */
class FilemapListenerDefaultsTest {
  @Test
  void foliosAddedDefaultsToOneFolioAddedPerFolioInOrder() {
    List<String> heard = new ArrayList<>();
    FilemapListener l = new FilemapListener() {
      @Override
      public void folioAdded(long ino, long flags, long index, int order) {
        heard.add(ino + ":" + flags + ":" + index + ":" + order);
      }
    };
    l.foliosAdded(7, 12, 512, 3, 9);
    assertEquals(List.of("7:12:512:9", "7:12:1024:9", "7:12:1536:9"), heard);
    l.foliosAdded(7, 12, 4, 0, 0);
    assertEquals(3, heard.size(), "an empty run is no call");
  }
}
