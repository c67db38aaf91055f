package dev.gmem.core.filemap;

import dev.gmem.api.spi.FolioAllocator;

/**
 * Folio size follows shareability (upstream "restructuring on conversion"): a block of the
 * allocator's folio order is one folio when it holds only private pages; otherwise it is split
 * along the allocator's split chain ({@link FolioAllocator.Inode#splitOrder}, e.g. 18 → 9 → 0),
 * each piece again as large as its own pages allow, down to 4 KiB folios for shared pages. That
 * layout is the <em>normal form</em>; the fault path hands blocks out in it and conversion keeps
 * every block in it.
 */
public final class FolioShape {

  /** Whether every page of {@code [start, end)} is (or will be) private. */
  @FunctionalInterface
  public interface PrivateRange {
    boolean allPrivate(long start, long end);
  }

  /** Receives one folio of the normal form. */
  @FunctionalInterface
  public interface FolioVisitor {
    void folio(long index, int order);
  }

  /** Receives one split of the normal form, parents before their pieces. */
  @FunctionalInterface
  public interface SplitVisitor {
    void split(long index, int order, int newOrder);
  }

  private FolioShape() {}

  /** The next order down {@code allocator}'s split chain from {@code order > 0}. */
  public static int splitOrder(FolioAllocator.Inode allocator, int order) {
    int next = allocator.splitOrder(order);
    if (next < 0 || next >= order) {
      throw new IllegalStateException("allocator split chain goes from order " + order + " to " + next);
    }
    return next;
  }

  /** Visits the folios of the normal form of block {@code [start, start + 2^order)}, in index order. */
  public static void folios(FolioAllocator.Inode allocator, PrivateRange pages, long start, int order, FolioVisitor out) {
    long n = 1L << order;
    if (order == 0 || pages.allPrivate(start, start + n)) {
      out.folio(start, order);
      return;
    }
    int next = splitOrder(allocator, order);
    for (long p = start; p < start + n; p += 1L << next) {
      folios(allocator, pages, p, next, out);
    }
  }

  /** Receives a run of consecutive folios of one order. */
  @FunctionalInterface
  public interface RunVisitor {
    void run(long index, int order, long count);
  }

  /**
   * Visits the folios of the normal form of block {@code [start, start + 2^order)} as maximal runs
   * of consecutive folios of one order, in index order: a huge page handed out as 512 4 KiB
   * folios is one run.
   */
  public static void folioRuns(FolioAllocator.Inode allocator, PrivateRange pages, long start, int order, RunVisitor out) {
    long[] run = {start, -1, 0}; // index, order, count of the pending run
    folios(allocator, pages, start, order, (index, o) -> {
      if (o == run[1] && index == run[0] + (run[2] << o)) {
        run[2]++;
        return;
      }
      if (run[2] > 0) {
        out.run(run[0], (int) run[1], run[2]);
      }
      run[0] = index;
      run[1] = o;
      run[2] = 1;
    });
    out.run(run[0], (int) run[1], run[2]);
  }

  /** Visits the splits that turn one folio of {@code order} at {@code start} into its normal form. */
  public static void splits(FolioAllocator.Inode allocator, PrivateRange pages, long start, int order, SplitVisitor out) {
    long n = 1L << order;
    if (order == 0 || pages.allPrivate(start, start + n)) {
      return;
    }
    int next = splitOrder(allocator, order);
    out.split(start, order, next);
    for (long p = start; next > 0 && p < start + n; p += 1L << next) {
      splits(allocator, pages, p, next, out);
    }
  }
}
