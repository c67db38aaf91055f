package dev.gmem.api;

import java.util.List;

/**
 * The memory and its contents: size, flags, shareability, filemap. It outlives the VM that created
 * it and lives while any file or mapping references it.
 *
 * <p>Units: {@link #size()} is in bytes; every other position here is a page index
 * ({@code index}, and half-open ranges {@code [startIndex, endIndex)}) of {@link Folio#PAGE_SIZE}
 * pages, as the kernel's filemap counts. {@link GuestMemFile} speaks in byte offsets instead.
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public interface GuestMemInode {

  /** Inode number, distinct per inode. */
  long ino();

  /** Size in bytes. */
  long size();

  long flags();

  /** Shareability of the page at {@code index} (the "get" upstream lacks). */
  Shareability shareability(long index);

  /** Maximal shareability runs intersecting pages {@code [startIndex, endIndex)}, clipped to it. */
  List<ShareabilityRange> shareabilityRanges(long startIndex, long endIndex);

  /** Folios present in pages {@code [startIndex, endIndex)}, in index order. */
  List<Folio> folios(long startIndex, long endIndex);

  /**
   * The largest page order the guest may map page {@code index} at now
   * ({@code kvm_gmem_mapping_order}): the order of the folio holding it, capped by the arch's
   * {@link dev.gmem.api.spi.ArchHooks#maxMappingOrder}; 0 (4 KiB) where a huge page is split and
   * where no folio is present yet.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.1")
  default int mappingOrder(long index) {
    return 0;
  }

  /** Pages currently allocated (backed by a folio). */
  long allocatedPages();

  /** The open files viewing this inode. */
  List<GuestMemFile> files();
}
