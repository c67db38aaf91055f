package dev.gmem.alloc.hugetlb;

import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.spi.FolioAllocator;
import dev.gmem.api.spi.HostMemory;

/**
 * Upstream's guestmem_hugetlb allocator on the real pool: {@code inode_setup} picks the page size
 * from the creation flags (EINVAL for a size the host has no pool of, or a file size that is not
 * a multiple of it), creates a hugetlbfs memfd and reserves all of it (ENOMEM when the pool's
 * persistent pages cannot cover it). 1 GiB pages split in stages, through 2 MiB.
 */
public final class HugetlbAllocator implements FolioAllocator {
  /** Order a 1 GiB page splits to first. */
  static final int STAGED_SPLIT_ORDER = Folio.PMD_ORDER;

  private final HostMemory host;
  private final MetadataBudget budget;

  /** An allocator whose split metadata is limited only by the JVM heap. */
  public HugetlbAllocator(HostMemory host) {
    this(host, Long.MAX_VALUE);
  }

  /** An allocator whose splits fail with ENOMEM beyond {@code metadataLimit} bytes of modelled kernel metadata. */
  public HugetlbAllocator(HostMemory host, long metadataLimit) {
    this.host = host;
    this.budget = new MetadataBudget(metadataLimit);
  }

  @Override
  public Inode setupInode(long size, long flags) {
    HugePageSize pageSize = HugePageSize.of(flags, host.hugePagePools());
    if (size <= 0 || size % pageSize.bytes() != 0) {
      throw GmemException.einval("file size 0x" + Long.toHexString(size) + " is not a multiple of the " + pageSize + " huge page size");
    }
    long nrBlocks = size / pageSize.bytes();
    int pieceOrder = pageSize.order() > STAGED_SPLIT_ORDER ? STAGED_SPLIT_ORDER : 0;
    SplitTracker tracker = new SplitTracker(pageSize.order(), pieceOrder, nrBlocks, budget);
    HostMemory.MemoryFile file = host.createMemfd("gmem-hugetlb-" + pageSize.toString().replace(" ", ""), pageSize.memfdFlags(), size);
    try {
      PoolReservation.reserveAll(host, file, pageSize);
    } catch (RuntimeException e) {
      file.close();
      throw e;
    }
    return new HugetlbInode(pageSize, file, tracker);
  }

  /** Bytes of modelled split metadata in use across this allocator's inodes. */
  public long metadataBytes() {
    return budget.used();
  }
}
