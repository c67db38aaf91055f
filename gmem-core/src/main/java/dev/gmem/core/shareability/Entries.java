package dev.gmem.core.shareability;

import dev.gmem.api.Shareability;

/**
 * Packing of a run boundary into one {@code long}: {@code start << 2 | ordinal}. Page indices are
 * below 2^52, so the packed form stays positive, and ordering packed entries orders their starts;
 * a leaf is then a single {@code long[]} (8 bytes per run).
 */
final class Entries {

  /** Largest supported size: a 2^64-byte file of 4 KiB pages. */
  static final long MAX_PAGES = 1L << 52;

  private static final Shareability[] VALUES = Shareability.values();

  private Entries() {}

  static long pack(long start, Shareability value) {
    return start << 2 | value.ordinal();
  }

  static long start(long entry) {
    return entry >>> 2;
  }

  static Shareability value(long entry) {
    return VALUES[(int) (entry & 3)];
  }

  static int ordinal(long entry) {
    return (int) (entry & 3);
  }

  /** The largest packed entry whose run could contain {@code index}: floor searches use it. */
  static long probe(long index) {
    return index << 2 | 3;
  }
}
