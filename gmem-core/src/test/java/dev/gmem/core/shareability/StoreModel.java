package dev.gmem.core.shareability;

import dev.gmem.api.Shareability;
import dev.gmem.api.ShareabilityRange;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/** The trivial reference: one byte per page. */
final class StoreModel {

  private static final Shareability[] VALUES = Shareability.values();

  final byte[] pages;

  StoreModel(int n, Shareability initial) {
    pages = new byte[n];
    Arrays.fill(pages, (byte) initial.ordinal());
  }

  void set(long start, long end, Shareability s) {
    Arrays.fill(pages, (int) start, (int) end, (byte) s.ordinal());
  }

  Shareability get(int i) {
    return VALUES[pages[i]];
  }

  List<ShareabilityRange> ranges(int start, int end) {
    List<ShareabilityRange> out = new ArrayList<>();
    int runStart = start;
    for (int i = start + 1; i <= end; i++) {
      if (i == end || pages[i] != pages[runStart]) {
        out.add(new ShareabilityRange(runStart, i, VALUES[pages[runStart]]));
        runStart = i;
      }
    }
    return out;
  }

  boolean isUniform(int start, int end, Shareability s) {
    for (int i = start; i < end; i++) {
      if (pages[i] != s.ordinal()) {
        return false;
      }
    }
    return true;
  }

  long count(Shareability s) {
    long c = 0;
    for (byte b : pages) {
      if (b == s.ordinal()) {
        c++;
      }
    }
    return c;
  }

  /** Expands a run list back to one byte per page. */
  static byte[] expand(List<ShareabilityRange> ranges, int n) {
    byte[] out = new byte[n];
    for (ShareabilityRange r : ranges) {
      Arrays.fill(out, (int) r.start(), (int) r.end(), (byte) r.shareability().ordinal());
    }
    return out;
  }
}
