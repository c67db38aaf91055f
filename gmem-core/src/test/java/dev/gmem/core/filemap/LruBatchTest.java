package dev.gmem.core.filemap;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The batched add holds exactly what the same adds one by one would. */
class LruBatchTest {

  @Test
  void addAllHoldsWhatAddsOneByOneWould() {
    for (int held = 0; held <= LruBatch.CAPACITY; held++) {
      for (int count = 1; count <= 3 * LruBatch.CAPACITY + 2; count++) {
        for (int order : new int[] {0, 9}) {
          LruBatch one = new LruBatch();
          LruBatch all = new LruBatch();
          for (int i = 0; i < held; i++) {
            one.add(1_000_000 + i);
            all.add(1_000_000 + i);
          }
          for (int i = 0; i < count; i++) {
            one.add((long) i << order);
          }
          all.addAll(0, order, count);
          String what = held + " held, " + count + " added, order " + order;
          assertEquals(one.size(), all.size(), what);
          assertEquals(held(one), held(all), what);
        }
      }
    }
  }

  /** The held folio indices, ascending. */
  private static List<Long> held(LruBatch b) {
    List<Long> out = new ArrayList<>();
    for (long x = b.first(0, Long.MAX_VALUE); x >= 0; x = b.first(x + 1, Long.MAX_VALUE)) {
      out.add(x);
    }
    return out;
  }
}
