package dev.gmem.arch.tdx.module;

import dev.gmem.arch.tdx.Seamcall;
import dev.gmem.arch.tdx.SeamcallRecord;
import dev.gmem.arch.tdx.TdxAbi;
import java.util.ArrayList;
import java.util.List;

/**
 * The latest SEAMCALLs of a TD, as a ring of primitives: a measured populate executes 17 per page,
 * so recording one must cost a few stores, not an object. {@link SeamcallRecord}s are made only
 * when someone reads the log. Not thread-safe: the TD's module model serialises.
 */
final class SeamcallLog {
  private static final Seamcall[] CALLS = Seamcall.values();

  private final byte[] calls;
  private final long[] gpas;
  private final long[] statuses;
  /** SEAMCALLs recorded since the TD was created; the ring holds the last {@code capacity}. */
  private long count;

  /** {@code capacity}: a power of two, so the ring's slot is a mask, not a division. */
  SeamcallLog(int capacity) {
    if (Integer.bitCount(capacity) != 1) {
      throw new IllegalArgumentException("capacity " + capacity + " is not a power of two");
    }
    calls = new byte[capacity];
    gpas = new long[capacity];
    statuses = new long[capacity];
  }

  void add(Seamcall call, long gpa, long status) {
    int at = (int) count & (calls.length - 1);
    calls[at] = (byte) call.ordinal();
    gpas[at] = gpa;
    statuses[at] = status;
    count++;
  }

  /** {@code n} successful calls of {@code call} at {@code gpa}, {@code gpa + stride}, …: a page's MR.EXTENDs. */
  void addRun(Seamcall call, long gpa, long stride, int n) {
    byte c = (byte) call.ordinal();
    int mask = calls.length - 1;
    for (int i = 0; i < n; i++) {
      int at = (int) (count + i) & mask;
      calls[at] = c;
      gpas[at] = gpa + i * stride;
      statuses[at] = TdxAbi.TDX_SUCCESS;
    }
    count += n;
  }

  boolean isEmpty() {
    return count == 0;
  }

  /** The records the ring holds, oldest first. */
  List<SeamcallRecord> records() {
    int n = (int) Math.min(count, calls.length);
    List<SeamcallRecord> out = new ArrayList<>(n);
    for (long i = count - n; i < count; i++) {
      int at = (int) i & (calls.length - 1);
      out.add(new SeamcallRecord(CALLS[calls[at]], gpas[at], statuses[at]));
    }
    return out;
  }
}
