package dev.gmem.migrate;

import dev.gmem.migrate.wire.Handshake;
import dev.gmem.migrate.wire.Wire;
import java.util.List;

/**
 * The memslots' pages numbered densely in slot order: index i ↔ GFN, for per-page bitmaps on both
 * sides and the sequential stream order. Slots are few; lookups scan them.
 */
final class PageMap {
  private final long[] firstGfn;
  private final long[] firstIndex;
  private final long[] count;
  private final long total;

  PageMap(List<Handshake.SlotInfo> slots) {
    int n = slots.size();
    firstGfn = new long[n];
    firstIndex = new long[n];
    count = new long[n];
    long at = 0;
    for (int i = 0; i < n; i++) {
      firstGfn[i] = slots.get(i).gpa() / Wire.PAGE;
      count[i] = slots.get(i).size() / Wire.PAGE;
      firstIndex[i] = at;
      at += count[i];
    }
    total = at;
  }

  long total() {
    return total;
  }

  /** The dense index of {@code gfn}, or -1 when no memslot covers it. */
  long index(long gfn) {
    for (int i = 0; i < firstGfn.length; i++) {
      if (Long.compareUnsigned(gfn - firstGfn[i], count[i]) < 0) {
        return firstIndex[i] + gfn - firstGfn[i];
      }
    }
    return -1;
  }

  /** Which memslot (by position) covers {@code gfn}, or -1. */
  int slotOf(long gfn) {
    for (int i = 0; i < firstGfn.length; i++) {
      if (Long.compareUnsigned(gfn - firstGfn[i], count[i]) < 0) {
        return i;
      }
    }
    return -1;
  }

  long gfn(long index) {
    for (int i = firstGfn.length - 1; i >= 0; i--) {
      if (index >= firstIndex[i]) {
        return firstGfn[i] + index - firstIndex[i];
      }
    }
    throw new IndexOutOfBoundsException(index);
  }
}
