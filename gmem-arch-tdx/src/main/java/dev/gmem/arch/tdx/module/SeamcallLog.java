package dev.gmem.arch.tdx.module;

import dev.gmem.arch.tdx.Seamcall;
import dev.gmem.arch.tdx.SeamcallRecord;
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

  SeamcallLog(int capacity) {
    calls = new byte[capacity];
    gpas = new long[capacity];
    statuses = new long[capacity];
  }

  void add(Seamcall call, long gpa, long status) {
    int at = (int) (count % calls.length);
    calls[at] = (byte) call.ordinal();
    gpas[at] = gpa;
    statuses[at] = status;
    count++;
  }

  boolean isEmpty() {
    return count == 0;
  }

  /** The records the ring holds, oldest first. */
  List<SeamcallRecord> records() {
    int n = (int) Math.min(count, calls.length);
    List<SeamcallRecord> out = new ArrayList<>(n);
    for (long i = count - n; i < count; i++) {
      int at = (int) (i % calls.length);
      out.add(new SeamcallRecord(CALLS[calls[at]], gpas[at], statuses[at]));
    }
    return out;
  }
}
