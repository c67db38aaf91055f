package dev.gmem.core.convert;

/** The fallible steps of a conversion, all before its point of no return, in the order they run. */
public enum ConversionStep {
  /** Preparing the shareability store's next version (tracking memory). */
  STORE_PREPARE,
  /** Preparing a folio split (allocator metadata). */
  SPLIT_PREPARE,
  /** Preparing a folio merge (allocator metadata). */
  MERGE_PREPARE,
  /** The unexpected-reference check (to-private). */
  REFCHECK,
  /** Preparing the host mappings' change: VMA budget, spare mappings for remaps. */
  MAPPINGS_PREPARE,
  /** Preparing the detach of exposed pages (to-private): copy buffer, huge-page pool. */
  DETACH_PREPARE,
  /** The arch's veto ({@code ArchHooks.prepareConversion}), the last step before the point of no return. */
  ARCH_VETO
}
