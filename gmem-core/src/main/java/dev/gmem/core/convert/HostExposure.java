package dev.gmem.core.convert;

import com.google.common.collect.Range;
import com.google.common.collect.RangeSet;
import com.google.common.collect.TreeRangeSet;
import java.util.ArrayList;
import java.util.List;

/**
 * The pages of one inode that raw host users may have reached since they last got fresh memory:
 * pages the file was mapped at in a host mapping whose raw view ({@code address()},
 * {@code buffer()}) had been handed out. Only through such a page can the kernel hold a
 * reference (vmsplice, O_DIRECT, io_uring fixed buffers: GUP) that user space cannot see, so a
 * to-private detaches exactly these pages from the file. Pages leave the set when they are
 * detached; a punch leaves them in (a harmless over-approximation). Sparse ranges of page
 * indices, so a 2^51-page file costs nothing until it is mapped raw.
 */
public final class HostExposure {
  private final RangeSet<Long> pages = TreeRangeSet.create();

  /** A raw user may reach pages {@code [start, end)} from now on. */
  public synchronized void add(long start, long end) {
    if (start < end) {
      pages.add(Range.closedOpen(start, end));
    }
  }

  /** Pages {@code [start, end)} got fresh memory no raw user has reached. */
  synchronized void remove(long start, long end) {
    if (start < end) {
      pages.remove(Range.closedOpen(start, end));
    }
  }

  /** The exposed runs inside {@code [start, end)}, as {start, end} pairs in order. */
  public synchronized List<long[]> within(long start, long end) {
    if (start >= end || pages.isEmpty()) {
      return List.of();
    }
    List<long[]> out = new ArrayList<>();
    for (Range<Long> r : pages.subRangeSet(Range.closedOpen(start, end)).asRanges()) {
      out.add(new long[] {r.lowerEndpoint(), r.upperEndpoint()});
    }
    return out;
  }

  /** Whether any page of {@code [start, end)} is exposed. */
  public synchronized boolean any(long start, long end) {
    return start < end && pages.intersects(Range.closedOpen(start, end));
  }
}
