package dev.gmem.alloc.hugetlb;

import dev.gmem.api.Errno;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.spi.FolioAllocator;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * Which huge pages of one inode are allocated and how each is split, compactly: a bit per huge
 * page, a reference per huge page, and for a split huge page one small record — with a bit per
 * 2 MiB piece for a 1 GiB page split in stages. Nothing per 4 KiB page: a 1 GiB page split down
 * to 4 KiB costs about 100 bytes here (the upstream analogue is the metadata stash).
 *
 * <p>Split and merge are prepared (fallible: the {@link MetadataBudget} and the record's memory)
 * and committed (infallible) separately. Callers serialise changes to one huge page (core holds
 * the inode's invalidate lock exclusively, or a per-block lock when handing a new page out);
 * different huge pages may change concurrently.
 */
final class SplitTracker {
  private final int order;
  private final int pieceOrder;
  private final long nrBlocks;
  private final MetadataBudget budget;
  private final AtomicLongArray allocated;
  private final AtomicReferenceArray<SplitBlock> split;

  /** How one huge page is split: into pieces of {@code pieceOrder}, some of them further into 4 KiB. */
  private static final class SplitBlock {
    final int pieceOrder;
    /** Pieces split further to 4 KiB; null when {@code pieceOrder} is 0. */
    final long[] splitPieces;
    /** Metadata bytes charged for this page's splits. */
    long charged;
    /** 4 KiB pages of it freed piecemeal (only when an inode is evicted split). */
    long freedPages;

    SplitBlock(int pieceOrder, int pieces, long charged) {
      this.pieceOrder = pieceOrder;
      this.splitPieces = pieceOrder > 0 ? new long[(pieces + 63) >>> 6] : null;
      this.charged = charged;
    }

    boolean isSplit(int piece) {
      return splitPieces != null && (splitPieces[piece >>> 6] & (1L << piece)) != 0;
    }

    void setSplit(int piece, boolean value) {
      if (value) {
        splitPieces[piece >>> 6] |= 1L << piece;
      } else {
        splitPieces[piece >>> 6] &= ~(1L << piece);
      }
    }
  }

  /**
   * @param order      the huge page's folio order
   * @param pieceOrder the order a huge page splits to first (0: straight to 4 KiB)
   * @param nrBlocks   huge pages in the inode
   */
  SplitTracker(int order, int pieceOrder, long nrBlocks, MetadataBudget budget) {
    if (nrBlocks > Integer.MAX_VALUE) {
      throw GmemException.einval("more than 2^31 huge pages in one file");
    }
    this.order = order;
    this.pieceOrder = pieceOrder;
    this.nrBlocks = nrBlocks;
    this.budget = budget;
    this.allocated = new AtomicLongArray((int) ((nrBlocks + 63) >>> 6));
    this.split = new AtomicReferenceArray<>((int) nrBlocks);
  }

  /** The order a folio of {@code o} splits to first. */
  int splitOrder(int o) {
    return o == order ? pieceOrder : 0;
  }

  // ---- allocation ----------------------------------------------------------------------------

  void markAllocated(long index) {
    int b = block(index);
    long bit = 1L << b;
    if ((allocated.getAndAccumulate(b >>> 6, bit, (x, y) -> x | y) & bit) != 0) {
      throw new IllegalStateException("huge page at page " + index + " allocated twice");
    }
  }

  boolean isAllocated(long index) {
    int b = block(index);
    return (allocated.get(b >>> 6) & (1L << b)) != 0;
  }

  /** Forgets the huge page at {@code index}: not allocated, not split, its metadata given back. */
  void release(long index) {
    int b = block(index);
    SplitBlock sb = split.getAndSet(b, null);
    if (sb != null) {
      budget.release(sb.charged);
    }
    allocated.getAndAccumulate(b >>> 6, ~(1L << b), (x, y) -> x & y);
  }

  /** Counts {@code 2^o} pages of a split huge page as freed; true once all of it is. */
  boolean freePart(long index, int o) {
    SplitBlock sb = split.get(block(index));
    if (sb == null) {
      throw new IllegalStateException("order-" + o + " folio at page " + index + " freed from a huge page that is not split");
    }
    sb.freedPages += 1L << o;
    return sb.freedPages == 1L << order;
  }

  // ---- split and merge -----------------------------------------------------------------------

  FolioAllocator.Restructure prepareSplit(long index, int o, int newOrder) {
    int b = block(index);
    long offset = index << Folio.PAGE_SHIFT;
    requireAllocated(index);
    long cost = MetadataBudget.splitCost(o, newOrder);
    if (o == order && (newOrder == 0 || newOrder == pieceOrder)) {
      if (split.get(b) != null) {
        throw new IllegalStateException("huge page at page " + index + " is split already");
      }
      budget.charge(cost, offset);
      SplitBlock sb;
      try {
        sb = new SplitBlock(newOrder, 1 << (order - newOrder), cost);
      } catch (OutOfMemoryError e) {
        budget.release(cost);
        throw GmemException.atOffset(Errno.ENOMEM, offset, "no memory to track the split of the huge page at page " + index);
      }
      return restructure(() -> split.set(b, sb), () -> budget.release(cost));
    }
    if (o == pieceOrder && o > 0 && newOrder == 0) {
      int piece = piece(index);
      SplitBlock current = split.get(b); // null: the huge page's own split is prepared in the same call
      if (current != null && current.isSplit(piece)) {
        throw new IllegalStateException("piece at page " + index + " is split already");
      }
      budget.charge(cost, offset);
      return restructure(() -> {
        SplitBlock sb = split.get(b);
        sb.setSplit(piece, true);
        sb.charged += cost;
      }, () -> budget.release(cost));
    }
    throw new IllegalArgumentException("cannot split an order-" + o + " folio to order " + newOrder + " (huge page order " + order + ")");
  }

  /** Merging gives metadata back and needs none, so it cannot fail. */
  FolioAllocator.Restructure prepareMerge(long index, int o) {
    int b = block(index);
    SplitBlock sb = split.get(b);
    if (o == order && sb != null) {
      return restructure(() -> {
        split.set(b, null);
        budget.release(sb.charged);
      }, () -> {});
    }
    int piece = piece(index);
    if (o == pieceOrder && o > 0 && sb != null && sb.isSplit(piece)) {
      long cost = MetadataBudget.splitCost(o, 0);
      return restructure(() -> {
        sb.setSplit(piece, false);
        sb.charged -= cost;
        budget.release(cost);
      }, () -> {});
    }
    throw new IllegalStateException("no split order-" + o + " folio to merge at page " + index);
  }

  // ---- diagnostics ---------------------------------------------------------------------------

  /** Order of the folio holding page {@code index} as this tracker sees it; -1 when not allocated. */
  int orderAt(long index) {
    if (!isAllocated(index)) {
      return -1;
    }
    SplitBlock sb = split.get(block(index));
    if (sb == null) {
      return order;
    }
    return sb.isSplit(piece(index)) ? 0 : sb.pieceOrder;
  }

  /** Approximate heap bytes of this tracker (compressed oops): the arrays and every split record. */
  long estimatedBytes() {
    long bytes = 16 + 8L * allocated.length() + 16 + 4L * nrBlocks;
    for (int b = 0; b < nrBlocks; b++) {
      SplitBlock sb = split.get(b);
      if (sb != null) {
        bytes += 40 + (sb.splitPieces == null ? 0 : 16 + 8L * sb.splitPieces.length);
      }
    }
    return bytes;
  }

  private void requireAllocated(long index) {
    if (!isAllocated(index)) {
      throw new IllegalStateException("no huge page allocated at page " + index);
    }
  }

  private int block(long index) {
    long b = index >>> order;
    if (index < 0 || b >= nrBlocks) {
      throw new IndexOutOfBoundsException("page " + index + " outside the inode");
    }
    return (int) b;
  }

  private int piece(long index) {
    return (int) ((index & ((1L << order) - 1)) >>> pieceOrder);
  }

  private static FolioAllocator.Restructure restructure(Runnable commit, Runnable abort) {
    return new FolioAllocator.Restructure() {
      @Override
      public void commit() {
        commit.run();
      }

      @Override
      public void abort() {
        abort.run();
      }
    };
  }
}
