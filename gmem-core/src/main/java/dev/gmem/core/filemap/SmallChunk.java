package dev.gmem.core.filemap;

import java.util.Arrays;

/**
 * An immutable 512-page chunk holding folios of order 0..8: one byte per page, {@code order + 1}
 * in the low nibble ({@code 0} = absent) and {@link #PREPARED} for a prepared folio (set on every
 * page of the folio, so lookups never have to find the head). A folio's start is its index
 * rounded down to its order, so no head marker is needed.
 *
 * <p>Changes copy the chunk and swap the slot by CAS: readers see a chunk all-before or
 * all-after. Full chunks of one order are canonicalised to shared constants, so a split 1 GiB
 * folio, or a fully populated 4 KiB range, costs no per-chunk memory at all.
 */
final class SmallChunk {

  static final int PAGES = 512;
  static final int ORDERS = 9;
  static final int ORDER_BITS = 0x0F;
  static final int PREPARED = 0x10;

  /** {@code FULL[order][prepared ? 1 : 0]}: immutable, shared by every filemap. */
  private static final SmallChunk[][] FULL = new SmallChunk[ORDERS][2];

  static {
    for (int o = 0; o < ORDERS; o++) {
      for (int p = 0; p < 2; p++) {
        byte[] pages = new byte[PAGES];
        Arrays.fill(pages, encode(o, p == 1));
        FULL[o][p] = new SmallChunk(pages, PAGES);
      }
    }
  }

  private final byte[] pages;
  final int present;

  private SmallChunk(byte[] pages, int present) {
    this.pages = pages;
    this.present = present;
  }

  static byte encode(int order, boolean prepared) {
    return (byte) ((order + 1) | (prepared ? PREPARED : 0));
  }

  static SmallChunk full(int order, boolean prepared) {
    return FULL[order][prepared ? 1 : 0];
  }

  boolean isCanonical() {
    int o = orderAt(0);
    return o >= 0 && FULL[o][prepared(0) ? 1 : 0] == this;
  }

  /** Order of the folio covering {@code off}, or -1. */
  int orderAt(int off) {
    return (pages[off] & ORDER_BITS) - 1;
  }

  boolean prepared(int off) {
    return (pages[off] & PREPARED) != 0;
  }

  boolean isFree(int off, int n) {
    for (int i = off; i < off + n; i++) {
      if (pages[i] != 0) {
        return false;
      }
    }
    return true;
  }

  /** The bits of {@code want} whose page {@code off + bit} is free. */
  long freeMask(int off, long want) {
    long free = 0;
    for (long w = want; w != 0; w &= w - 1) {
      int k = Long.numberOfTrailingZeros(w);
      if (pages[off + k] == 0) {
        free |= 1L << k;
      }
    }
    return free;
  }

  /** A copy with an order-0 folio at each page {@code off + bit} of {@code mask} (all free in {@code base}). */
  static SmallChunk withPages(SmallChunk base, int off, long mask) {
    byte[] p = base == null ? new byte[PAGES] : base.pages.clone();
    byte value = encode(0, false);
    for (long w = mask; w != 0; w &= w - 1) {
      p[off + Long.numberOfTrailingZeros(w)] = value;
    }
    int present = (base == null ? 0 : base.present) + Long.bitCount(mask);
    if (present == PAGES) {
      SmallChunk canon = FULL[(p[0] & ORDER_BITS) - 1][(p[0] & PREPARED) != 0 ? 1 : 0];
      if (Arrays.equals(p, canon.pages)) {
        return canon;
      }
    }
    return new SmallChunk(p, present);
  }

  /**
   * A copy with {@code [off, off + n)} set to {@code value} ({@code 0} clears), or {@code null} if
   * that leaves the chunk empty. {@code presentDelta} is the change in present pages.
   */
  static SmallChunk with(SmallChunk base, int off, int n, byte value, int presentDelta) {
    byte[] p = base == null ? new byte[PAGES] : base.pages.clone();
    Arrays.fill(p, off, off + n, value);
    int present = (base == null ? 0 : base.present) + presentDelta;
    if (present == 0) {
      return null;
    }
    if (present == PAGES) {
      SmallChunk canon = FULL[(p[0] & ORDER_BITS) - 1][(p[0] & PREPARED) != 0 ? 1 : 0];
      if (Arrays.equals(p, canon.pages)) {
        return canon;
      }
    }
    return new SmallChunk(p, present);
  }

  /**
   * A copy with every folio of {@code order} in {@code [off, off + n)} ({@code off} and {@code n}
   * aligned to it) set whose pages are all free in {@code base} — a folio overlapping a present
   * page is left out — or {@code base} itself when none is free. One copy for all of them: the
   * pages added are {@code result.present - base.present}.
   */
  static SmallChunk withFolios(SmallChunk base, int off, int n, int order) {
    int size = 1 << order;
    byte value = encode(order, false);
    byte[] p = null;
    int added = 0;
    for (int f = off; f < off + n; f += size) {
      if (base == null || base.isFree(f, size)) {
        if (p == null) {
          p = base == null ? new byte[PAGES] : base.pages.clone();
        }
        Arrays.fill(p, f, f + size, value);
        added += size;
      }
    }
    if (p == null) {
      return base;
    }
    int present = (base == null ? 0 : base.present) + added;
    if (present == PAGES) {
      SmallChunk canon = FULL[(p[0] & ORDER_BITS) - 1][(p[0] & PREPARED) != 0 ? 1 : 0];
      if (Arrays.equals(p, canon.pages)) {
        return canon;
      }
    }
    return new SmallChunk(p, present);
  }

  /** A copy with the prepared flag cleared on {@code [off, off + n)}, or this chunk if none was set. */
  SmallChunk withoutPrepared(int off, int n) {
    if (this == FULL[(pages[0] & ORDER_BITS) - 1 < 0 ? 0 : (pages[0] & ORDER_BITS) - 1][0]) {
      return this;
    }
    boolean any = false;
    for (int i = off; i < off + n && !any; i++) {
      any = (pages[i] & PREPARED) != 0;
    }
    if (!any) {
      return this;
    }
    byte[] p = pages.clone();
    for (int i = off; i < off + n; i++) {
      p[i] &= (byte) ~PREPARED;
    }
    if (present == PAGES) {
      SmallChunk canon = FULL[(p[0] & ORDER_BITS) - 1][0];
      if (Arrays.equals(p, canon.pages)) {
        return canon;
      }
    }
    return new SmallChunk(p, present);
  }

  /** Whether every page is present (the chunk is one of the shared constants or equivalent). */
  boolean isFull() {
    return present == PAGES;
  }

  /** Heap bytes of this chunk if it is not a shared constant. */
  long bytes() {
    return isCanonical() ? 0 : 24 + ((16 + PAGES + 7) & ~7L);
  }
}
