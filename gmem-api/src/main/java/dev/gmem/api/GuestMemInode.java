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

  /** Folios currently present: a huge page split to 4 KiB folios counts each of them. */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default long folioCount() {
    return folios(0, size() >>> Folio.PAGE_SHIFT).size();
  }

  /** Order of the folio holding page {@code index}, or -1 where no folio is present. */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default int orderAt(long index) {
    List<Folio> f = folios(index, index + 1);
    return f.isEmpty() ? -1 : f.get(0).order();
  }

  /**
   * Approximate heap bytes spent tracking this inode's folios: gmem's filemap plus the allocator's
   * own tracking ({@link dev.gmem.api.spi.FolioAllocator.Inode#trackingBytes}). For diagnostics
   * and reports; 0 where the implementation does not know.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default long trackingBytes() {
    return 0;
  }

  /** The open files viewing this inode. */
  List<GuestMemFile> files();
}
