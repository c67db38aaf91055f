package dev.gmem.core.filemap;

import dev.gmem.api.Folio;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.atomic.LongAdder;

/**
 * Index → folio for one inode (upstream: the page cache's xarray), with per-folio "prepared" state
 * and per-page reference counts.
 *
 * <h2>Representation</h2>
 * Pages are grouped in 512-page (2 MiB) chunks held in a lazily built radix table. A chunk slot is
 * empty, a {@link SmallChunk} (one byte per page for folios of order 0..8, copy-on-write) or a
 * reference to one shared {@link HugeFolio} object (order 9..18) — so there is never a Java object
 * per 4 KiB page. Full chunks of one order are shared constants: a 1 GiB folio costs one object
 * plus 2 KiB of table, and the same 1 GiB split to 4 KiB costs nothing more; the worst case (mixed
 * chunks) is ~1.1 bytes per page. Reference counts are kept sparsely (only pages with a count).
 * The work on the table is split by kind: {@link FolioInsert} (lock-free adds), {@link FolioWalk}
 * (range walks) and {@link FolioRestructure} (remove, split, merge); this class checks arguments,
 * answers single-page lookups, keeps the prepared flags, the reference counts and the counts.
 *
 * <h2>Concurrency</h2>
 * <ul>
 *   <li>{@link #add}, {@link #addAll}, the lookups ({@link #isPresent}, {@link #orderAt},
 *       {@link #folioStart}, {@link #folio}, {@link #isPrepared}, {@link #folios}), {@link #markPrepared},
 *       {@link #clearPrepared} and the reference counts ({@link #get}, {@link #put},
 *       {@link #refcount}, {@link #firstReferenced}) are thread-safe against each other — the fault
 *       path runs them under the invalidate lock held <em>shared</em>. Lookups are lock-free and
 *       allocation-free (except {@link #folio} and {@link #folios}).</li>
 *   <li>{@code add} is linearizable: of overlapping concurrent adds, the first to take any page
 *       wins; an add fails only when a folio that was present at that moment overlaps it. A huge
 *       folio's pages appear at once.</li>
 *   <li>{@link #remove}, {@link #split} and {@link #merge} are structural: the caller must exclude
 *       concurrent adds, prepared-flag changes and other structural calls (invalidate lock held
 *       exclusively). Lookups may still run concurrently; they see every page either before or after,
 *       with its presence unchanged by split and merge.</li>
 *   <li>{@link #presentPages()} and {@link #folioCount()} are exact when no add runs concurrently.</li>
 * </ul>
 */
public final class Filemap {

  /** Largest folio order: 1 GiB of 4 KiB pages. */
  public static final int MAX_ORDER = Folio.PUD_ORDER;
  /** Largest supported size: a 2^64-byte file. */
  public static final long MAX_PAGES = 1L << 52;

  static final int CHUNK_SHIFT = ChunkTable.BITS;
  static final int CHUNK_MASK = SmallChunk.PAGES - 1;

  private final long nrPages;
  private final ChunkTable table;
  private final RefCounts refs = new RefCounts();
  private final LongAdder present = new LongAdder();
  private final LongAdder folios = new LongAdder();
  private final PreparedParts preparedParts = new PreparedParts();

  /**
   * An empty filemap for an inode of {@code nrPages} pages.
   *
   * @param nrPages {@code 1 .. 2^52}
   */
  public Filemap(long nrPages) {
    if (nrPages <= 0 || nrPages > MAX_PAGES) {
      throw new IllegalArgumentException("nrPages out of range: " + nrPages);
    }
    this.nrPages = nrPages;
    this.table = new ChunkTable(((nrPages - 1) >>> CHUNK_SHIFT) + 1);
  }

  /** Number of pages the filemap can index. */
  public long nrPages() {
    return nrPages;
  }

  // ---------------------------------------------------------------- lookups

  /** Whether a folio covers page {@code index}. Lock-free, allocation-free. */
  public boolean isPresent(long index) {
    return orderAt(index) >= 0;
  }

  /** Order of the folio covering page {@code index}, or -1 if none. Lock-free, allocation-free. */
  public int orderAt(long index) {
    checkIndex(index);
    return FolioWalk.orderAt(table, index);
  }

  /** First page of the folio covering {@code index}, or -1 if none. Lock-free, allocation-free. */
  public long folioStart(long index) {
    int order = orderAt(index);
    return order < 0 ? -1 : index & -(1L << order);
  }

  /** A snapshot of the folio covering {@code index}, with its pages' summed reference counts. */
  public Optional<Folio> folio(long index) {
    int order = orderAt(index);
    if (order < 0) {
      return Optional.empty();
    }
    long start = index & -(1L << order);
    return Optional.of(new Folio(start, order, refs.sum(start, start + (1L << order))));
  }

  /**
   * The folios intersecting {@code [start, end)} in index order, including the (at most two) that
   * straddle its ends. O(chunks populated in the range + folios returned).
   */
  public List<Folio> folios(long start, long end) {
    List<Folio> out = new ArrayList<>();
    forEachFolio(start, end, (index, order) -> out.add(new Folio(index, order, refs.sum(index, index + (1L << order)))));
    return out;
  }

  /** Receives folios without allocating a {@link Folio} per folio. */
  @FunctionalInterface
  public interface FolioVisitor {
    void visit(long index, int order);
  }

  /**
   * Visits the folios intersecting {@code [start, end)} in index order, like {@link #folios} but
   * without allocation, for whole-range passes over millions of 4 KiB folios (conversion).
   */
  public void forEachFolio(long start, long end, FolioVisitor visitor) {
    checkRange(start, end);
    FolioWalk.forEachFolio(table, start, end, visitor);
  }

  /** Receives maximal runs of present pages. */
  @FunctionalInterface
  public interface RunVisitor {
    void visit(long start, long end);
  }

  /**
   * Visits the maximal runs of present pages in {@code [start, end)} (clipped), whatever their
   * folio structure: a fully populated 512-page chunk costs one step, not 512, so whole-range
   * passes over gigabytes of 4 KiB folios stay cheap.
   */
  public void forEachPresentRun(long start, long end, RunVisitor visitor) {
    checkRange(start, end);
    FolioWalk.forEachPresentRun(table, start, end, visitor);
  }

  /**
   * Clears the prepared flag of every folio lying wholly inside {@code [start, end)}, one chunk
   * copy per chunk rather than one per folio. Needs the exclusive lock, like {@link #split}.
   */
  public void clearPrepared(long start, long end) {
    checkRange(start, end);
    preparedParts.removeWhollyInside(start, end, this::orderAt);
    FolioWalk.clearPrepared(table, start, end);
  }

  /**
   * Whether folios cover every page of {@code [start, end)}. Lock-free, allocation-free; a full
   * 512-page chunk of small folios costs one step, so a split gigabyte is checked in 512.
   */
  public boolean allPresent(long start, long end) {
    checkRange(start, end);
    return FolioWalk.allPresent(table, start, end);
  }

  /** Pages covered by folios. */
  public long presentPages() {
    return present.sum();
  }

  /** Number of folios. */
  public long folioCount() {
    return folios.sum();
  }

  // ---------------------------------------------------------------- add

  /**
   * Adds a folio of {@code 2^order} pages at {@code index} ({@code filemap_add_folio}), not
   * prepared and with no references. Thread-safe and linearizable against concurrent adds and
   * lookups; see the class comment.
   *
   * @return {@code false} if any of its pages is already present (nothing changes)
   * @throws IllegalArgumentException for an order outside 0..18, an index not aligned to the
   *     order, or a folio reaching past the end
   */
  public boolean add(long index, int order) {
    checkBlock(index, order, 0, 1);
    boolean added = FolioInsert.add(table, index, order);
    if (added) {
      present.add(1L << order);
      folios.increment();
    }
    return added;
  }

  /**
   * Adds {@code count} consecutive folios of {@code 2^order} pages from {@code index}, as that many
   * {@link #add} calls in index order would — a folio overlapping a present page is left out — but
   * with one update per 512-page chunk instead of one per folio: the fault path hands out a huge
   * page split to 4 KiB folios this way. The folios of one chunk appear at once. Thread-safe like
   * {@link #add}.
   *
   * @return the number of folios added
   * @throws IllegalArgumentException as {@link #add} for the first and the last folio, or for a
   *     count below 1
   */
  public long addAll(long index, int order, long count) {
    checkBlock(index, order, 0, count);
    long nr = 1L << order;
    long end = index + (count << order);
    long added = 0;
    if (order >= CHUNK_SHIFT) {
      for (long i = index; i < end; i += nr) {
        added += add(i, order) ? 1 : 0;
      }
      return added;
    }
    for (long s = index; s < end; ) {
      long chunk = s >>> CHUNK_SHIFT;
      long chunkEnd = Math.min(end, (chunk + 1) << CHUNK_SHIFT);
      int pages = FolioInsert.addSmallRun(table, chunk, (int) (s & CHUNK_MASK), (int) (chunkEnd - s), order);
      if (pages > 0) {
        present.add(pages);
        folios.add(pages >>> order);
        added += pages >>> order;
      }
      s = chunkEnd;
    }
    return added;
  }

  /**
   * Adds an order-0 folio at each page {@code index + k} whose bit {@code k} is set in {@code want}
   * and that is free, as that many {@link #add add(index + k, 0)} calls would, with one update of
   * the chunk: the pages lie in one 512-page chunk ({@code index + 63} at most reaching its end).
   * Returns the mask of the pages added — a page another add took first is not in it, so its
   * caller frees its own folio for it. Thread-safe like {@link #add}.
   *
   * @throws IllegalArgumentException for a page past the end or a mask crossing the chunk
   */
  public long addPages(long index, long want) {
    if (want == 0) {
      return 0;
    }
    long last = index + 63 - Long.numberOfLeadingZeros(want);
    checkBlock(index, 0, 0, 1);
    checkBlock(last, 0, 0, 1);
    if ((index >>> CHUNK_SHIFT) != (last >>> CHUNK_SHIFT)) {
      throw new IllegalArgumentException("pages " + index + ".." + last + " cross a chunk");
    }
    long added = FolioInsert.addSmallPages(table, index >>> CHUNK_SHIFT, (int) (index & CHUNK_MASK), want);
    int n = Long.bitCount(added);
    if (n > 0) {
      present.add(n);
      folios.add(n);
    }
    return added;
  }

  // ---------------------------------------------------------------- structural changes

  /**
   * Removes every folio lying entirely inside {@code [start, end)} and returns them in index order,
   * each with the summed reference counts its pages had; those counts leave the filemap with the
   * folio (the caller now owns the folios and their outstanding references, and frees them).
   *
   * <p>A folio straddling either end is <em>left in place, untouched</em> — there are at most two,
   * and {@link #folios(long, long) folios(start, end)} afterwards returns exactly them (upstream
   * punch-hole zeroes such partial huge pages instead of freeing them; to free part of one, split
   * it first). The prepared flag goes with the removed folio. Structural: see the class comment.
   */
  public List<Folio> remove(long start, long end) {
    checkRange(start, end);
    List<Folio> out = new ArrayList<>();
    preparedParts.removeWhollyInside(start, end, this::orderAt);
    FolioRestructure.remove(table, refs, start, end, out);
    long pages = 0;
    for (Folio f : out) {
      pages += f.nrPages();
    }
    account(-pages, -out.size());
    return out;
  }

  /**
   * Splits the folio covering {@code index}, of order k, into {@code 2^(k - newOrder)} folios of
   * {@code newOrder}. Reference counts stay with their pages; every new folio inherits the
   * prepared flag, or its share of the {@linkplain #preparedParts prepared parts}. Presence of every page is unchanged. Structural: see the class comment.
   *
   * @throws IllegalStateException if no folio covers {@code index}, or its order is not above
   *     {@code newOrder}
   * @throws IllegalArgumentException if {@code newOrder} is outside 0..18
   */
  public void split(long index, int newOrder) {
    checkOrder(newOrder, 0);
    checkIndex(index);
    int order = orderAt(index);
    account(0, FolioRestructure.split(table, index, newOrder));
    if (order > newOrder && !preparedParts.isEmpty()) {
      preparedParts.split(index & -(1L << order), order, newOrder, this::markPrepared);
    }
  }

  /**
   * Merges the pages of the aligned block {@code [index, index + 2^order)}, all present as
   * smaller folios, into one folio of {@code order}. Reference counts stay with their pages; the
   * merged folio is prepared only if every part was, and otherwise keeps which parts were
   * ({@link #preparedParts}). Structural: see the class comment.
   *
   * @throws IllegalStateException if a page of the block is absent, or already belongs to a folio
   *     of {@code order} or larger
   * @throws IllegalArgumentException if {@code order} is outside 1..18, {@code index} is not
   *     aligned to it, or the block reaches past the end
   */
  public void merge(long index, int order) {
    checkBlock(index, order, 1, 1);
    List<long[]> prepared = new ArrayList<>();
    account(0, FolioRestructure.merge(table, index, order, prepared)); // a refused merge throws before any change
    prepared.addAll(preparedParts.take(index, index + (1L << order)));
    if (!isPrepared(index)) {
      preparedParts.put(index, prepared);
    }
  }

  // ---------------------------------------------------------------- prepared flag

  /**
   * The prepared blocks {@code {index, order}} of the unprepared folio at {@code start}, by
   * index: parts that were prepared before it was merged (see {@link PreparedParts}). Empty when
   * none are, or the folio is prepared.
   */
  public List<long[]> preparedParts(long start) {
    return preparedParts.get(start);
  }

  /** Records that blocks of the unprepared folio at {@code start} are prepared (a prepare that failed part way). */
  public void recordPreparedParts(long start, List<long[]> blocks) {
    preparedParts.put(start, blocks);
  }

  /** Whether the folio covering {@code index} is prepared; false if there is none. */
  public boolean isPrepared(long index) {
    checkIndex(index);
    Object slot = table.get(index >>> CHUNK_SHIFT);
    if (slot instanceof SmallChunk c) {
      return c.prepared((int) (index & CHUNK_MASK));
    }
    return slot instanceof HugeFolio h && h.isLive() && h.prepared();
  }

  /**
   * Marks the folio covering {@code index} prepared (arch {@code prepare} has run for it).
   * Atomic: of concurrent callers exactly one gets {@code true}.
   *
   * @return whether this call changed the flag
   * @throws IllegalStateException if no folio covers {@code index}
   */
  public boolean markPrepared(long index) {
    return setPrepared(index, true);
  }

  /**
   * Clears the prepared flag of the folio covering {@code index} (e.g. after converting it to
   * shared, which undoes the preparation).
   *
   * @return whether this call changed the flag
   * @throws IllegalStateException if no folio covers {@code index}
   */
  public boolean clearPrepared(long index) {
    return setPrepared(index, false);
  }

  private boolean setPrepared(long index, boolean value) {
    checkIndex(index);
    if (!preparedParts.isEmpty()) {
      preparedParts.remove(folioStart(index)); // the flag says it all now
    }
    long chunk = index >>> CHUNK_SHIFT;
    int off = (int) (index & CHUNK_MASK);
    for (;;) {
      Object slot = table.get(chunk);
      if (slot instanceof HugeFolio h && h.isLive()) {
        return h.casPrepared(value);
      }
      SmallChunk sc = slot instanceof SmallChunk s ? s : null;
      int order = sc == null ? -1 : sc.orderAt(off);
      if (order < 0) {
        throw new IllegalStateException("no folio at page " + index);
      }
      if (sc.prepared(off) == value) {
        return false;
      }
      int fs = off & -(1 << order);
      if (table.compareAndSet(chunk, sc, SmallChunk.with(sc, fs, 1 << order, SmallChunk.encode(order, value), 0))) {
        return true;
      }
    }
  }

  // ---------------------------------------------------------------- references

  /** References held on page {@code index} beyond the filemap's own. */
  public int refcount(long index) {
    checkIndex(index);
    return refs.get(index);
  }

  /**
   * Takes a reference on page {@code index} (a pin or an in-use mapping). Atomic.
   *
   * @throws IllegalStateException if no folio covers the page
   */
  public void get(long index) {
    if (!isPresent(index)) {
      throw new IllegalStateException("no folio at page " + index);
    }
    refs.increment(index);
  }

  /**
   * Drops a reference taken by {@link #get}. Atomic.
   *
   * @throws IllegalStateException if the page holds no reference (also after {@link #remove}
   *     handed its references to the caller)
   */
  public void put(long index) {
    checkIndex(index);
    refs.decrement(index);
  }

  /**
   * First page in {@code [start, end)} with a reference count above zero, or -1: where a
   * conversion to private stops with {@code EAGAIN}. O(log referenced pages).
   */
  public long firstReferenced(long start, long end) {
    checkRange(start, end);
    return refs.first(start, end);
  }

  // ---------------------------------------------------------------- accounting

  /**
   * Approximate heap footprint (compressed-oops layout): the chunk table, chunks that are not
   * shared constants, huge folio objects, and reference-count entries. Walks the populated
   * table: meant for diagnostics and reports.
   */
  public long estimatedBytes() {
    long bytes = 160 + table.directoryBytes() + 80L * refs.size();
    long chunks = ((nrPages - 1) >>> CHUNK_SHIFT) + 1;
    for (long c = table.next(0, chunks); c >= 0; c = table.next(c + 1, chunks)) {
      Object slot = table.get(c);
      if (slot instanceof SmallChunk sc) {
        bytes += sc.bytes();
      } else if (slot instanceof HugeFolio h) {
        bytes += 32;
        c = Math.max(c, h.endChunk() - 1);
      }
    }
    return bytes;
  }

  /** Test support: the slot table, to stage another add's reservation deterministically. */
  ChunkTable table() {
    return table;
  }

  private void account(long pages, long folioDelta) {
    if (pages != 0) {
      present.add(pages);
    }
    if (folioDelta != 0) {
      folios.add(folioDelta);
    }
  }

  private static void checkOrder(int order, int min) {
    if (order < min || order > MAX_ORDER) {
      throw new IllegalArgumentException("order " + order + " outside " + min + ".." + MAX_ORDER);
    }
  }

  /** {@code count} naturally aligned blocks of {@code 2^order} pages from {@code index} lie inside the file. */
  private void checkBlock(long index, int order, int minOrder, long count) {
    checkOrder(order, minOrder);
    checkIndex(index);
    if ((index & ((1L << order) - 1)) != 0) {
      throw new IllegalArgumentException("index " + index + " not aligned to order " + order);
    }
    if (count < 1 || count > (nrPages - index) >>> order) {
      throw new IllegalArgumentException(count + " block(s) of order " + order + " from " + index + " do not fit in " + nrPages + " pages");
    }
  }

  private void checkIndex(long index) {
    if (index < 0 || index >= nrPages) {
      throw new IndexOutOfBoundsException("page " + index + " outside [0, " + nrPages + ")");
    }
  }

  private void checkRange(long start, long end) {
    if (start < 0 || end <= start || end > nrPages) {
      throw new IllegalArgumentException("range [" + start + ", " + end + ") not a non-empty part of [0, " + nrPages + ")");
    }
  }
}
