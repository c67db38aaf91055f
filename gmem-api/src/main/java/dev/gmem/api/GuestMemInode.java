package dev.gmem.api;

import java.util.List;

/**
 * The memory and its contents: size, flags, shareability, filemap. It outlives the VM that created
 * it and lives while any file or mapping references it.
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public interface GuestMemInode {

  /** Inode number, distinct per inode. */
  long ino();

  long size();

  long flags();

  /** Shareability of the page at {@code index} (the "get" upstream lacks). */
  Shareability shareability(long index);

  /** Maximal shareability runs intersecting pages {@code [start, end)}, clipped to it. */
  List<ShareabilityRange> shareabilityRanges(long start, long end);

  /** Folios present in pages {@code [start, end)}, in index order. */
  List<Folio> folios(long start, long end);

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

  /**
   * The shareability sequence: changes whenever any page's shareability does (see
   * {@link GuestMemFile#shareabilitySequence()}).
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default long shareabilitySequence() {
    throw new UnsupportedOperationException("this gmem implementation keeps no shareability sequence");
  }

  /**
   * Pages the arch reported it could not reclaim ({@link dev.gmem.api.spi.ArchContext#leak}):
   * never returned to the allocator, never handed out again while the inode lives.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default long leakedPages() {
    return 0;
  }

  /** The open files viewing this inode. */
  List<GuestMemFile> files();
}
