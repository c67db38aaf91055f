package dev.gmem.core.convert;

/** The fallible steps of a conversion, all before its point of no return. */
public enum ConversionStep {
  /** Preparing the shareability store's next version (tracking memory). */
  STORE_PREPARE,
  /** Preparing a folio split (allocator metadata). */
  SPLIT_PREPARE,
  /** Preparing a folio merge (allocator metadata). */
  MERGE_PREPARE,
  /** Zapping host mappings of the range (to-private). */
  UNMAP,
  /** The unexpected-reference check (to-private). */
  REFCHECK,
  /** The arch's veto ({@code ArchHooks.prepareConversion}), the last step before the point of no return. */
  ARCH_VETO
}
