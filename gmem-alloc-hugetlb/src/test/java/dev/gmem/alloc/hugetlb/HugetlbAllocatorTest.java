package dev.gmem.alloc.hugetlb;

import static dev.gmem.alloc.hugetlb.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.spi.FolioAllocator;
import dev.gmem.api.spi.HostMemory;
import dev.gmem.api.spi.Support;
import dev.gmem.api.HugePagePool;
import dev.gmem.core.host.HugePages;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** The allocator on its own, against the real 2 MiB pool: validation, reservation, alloc/free accounting. */
class HugetlbAllocatorTest {
  @RegisterExtension static final HugePool POOL = HugePool.of(8, 0);

  static final long MIB2 = HugePool.MIB2;
  static final long FLAGS_2M = GmemFlags.MMAP | GmemFlags.hugePageSize(21);

  private final HostMemory host = TestHost.memory();

  @Test
  void claimsTheHugePageSizeFieldAndReportsThePools() {
    HugetlbAllocatorProvider p = new HugetlbAllocatorProvider();
    assertEquals("hugetlb", p.id());
    assertEquals(GmemFlags.HUGE_PAGE_MASK, p.creationFlags());
    assertTrue(p.claimsFlags(GmemFlags.hugePageSize(30)));
    assertTrue(!p.claimsFlags(GmemFlags.MMAP | GmemFlags.INIT_SHARED));
    Support s = p.probe(TestHost.info());
    assertTrue(s.supported());
    assertTrue(s.reason().contains("2 MiB total") && s.reason().contains("1 GiB total"), s.reason());
  }

  @Test
  void sizesThePoolHasNotOrTheFileIsNotAMultipleOfAreEinval() {
    HugetlbAllocator a = new HugetlbAllocator(host);
    HugePagePool before = HugePool.counters(MIB2);
    expect(Errno.EINVAL, () -> a.setupInode(MIB2 + 4096, FLAGS_2M));
    expect(Errno.EINVAL, () -> a.setupInode(MIB2 / 2, FLAGS_2M));
    expect(Errno.EINVAL, () -> a.setupInode(4L << 20, GmemFlags.hugePageSize(22))); // no 4 MiB pool on x86
    expect(Errno.EINVAL, () -> a.setupInode(1L << 34, GmemFlags.hugePageSize(34))); // beyond a 1 GiB folio
    assertEquals(before, HugePool.counters(MIB2), "nothing reserved by a refused creation");
  }

  @Test
  void theWholeInodeIsReservedAtCreationAndEnomemWhenThePoolCannotCoverIt() {
    HugetlbAllocator a = new HugetlbAllocator(host);
    HugePagePool before = HugePool.counters(MIB2);
    GmemException e = expect(Errno.ENOMEM, () -> a.setupInode((before.free() - before.reserved() + 1) * MIB2, FLAGS_2M));
    assertTrue(e.getMessage().contains("needs"), e.getMessage());
    assertEquals(before, HugePool.counters(MIB2));

    try (FolioAllocator.Inode inode = a.setupInode(4 * MIB2, FLAGS_2M)) {
      assertEquals(9, inode.folioOrder());
      assertEquals(HugePool.plus(before, 0, 4), HugePool.counters(MIB2),
          "all four pages reserved, none taken yet");
      inode.allocFolio(512);
      assertEquals(HugePool.plus(before, -1, 3), HugePool.counters(MIB2),
          "the page came out of the inode's reservation");
      inode.freeFolio(512, 9);
      assertEquals(HugePool.plus(before, 0, 4), HugePool.counters(MIB2),
          "a freed page goes back to the pool and stays reserved for the inode, as in a subpool");
    }
    assertEquals(before, HugePool.counters(MIB2), "teardown gives the reservation back");
  }

  /** A folio handle given back before core committed it returns its page; a committed one is freed by index. */
  @Test
  void anUncommittedFolioGoesBackAndACommittedOneIsFreedByIndex() {
    HugetlbAllocator a = new HugetlbAllocator(host);
    HugePagePool before = HugePool.counters(MIB2);
    try (FolioAllocator.Inode inode = a.setupInode(2 * MIB2, FLAGS_2M)) {
      FolioAllocator.Allocation lost = inode.allocate(512);
      assertEquals(HugePool.plus(before, -1, 1), HugePool.counters(MIB2), "the page came out of the reservation");
      lost.free();
      assertEquals(HugePool.plus(before, 0, 2), HugePool.counters(MIB2), "given back, still reserved for the inode");
      inode.allocate(512).commit();
      inode.freeFolio(512, 9);
      assertEquals(HugePool.plus(before, 0, 2), HugePool.counters(MIB2));
    }
    assertEquals(before, HugePool.counters(MIB2));
  }

  @Test
  void surplusPagesAreNeverUsedEvenWhenOvercommitAllowsThem() {
    long overcommit = HugePages.overcommit(MIB2);
    HugePages.setOvercommit(MIB2, 64);
    try {
      HugePagePool before = HugePool.counters(MIB2);
      long more = before.free() - before.reserved() + 2;
      expect(Errno.ENOMEM, () -> new HugetlbAllocator(host).setupInode(more * MIB2, FLAGS_2M));
      assertEquals(before, HugePool.counters(MIB2), "no surplus page was allocated");
    } finally {
      HugePages.setOvercommit(MIB2, overcommit);
    }
  }

  @Test
  void splitMetadataIsChargedAndCanRunOut() {
    HugetlbAllocator a = new HugetlbAllocator(host, MetadataBudget.splitCost(9, 0));
    try (FolioAllocator.Inode inode = a.setupInode(2 * MIB2, FLAGS_2M)) {
      inode.allocFolio(0);
      inode.allocFolio(512);
      FolioAllocator.Restructure first = inode.prepareSplit(0, 9, 0);
      GmemException e = expect(Errno.ENOMEM, () -> inode.prepareSplit(512, 9, 0));
      assertEquals(512L << 12, e.errorOffset().orElseThrow());
      first.commit();
      assertEquals(28 * 1024 + MetadataBudget.STASH_ENTRY, a.metadataBytes(), "2 MiB → 4 KiB restores 7 vmemmap pages");
      inode.prepareMerge(0, 9).commit();
      assertEquals(0, a.metadataBytes(), "merging gives the metadata back");
      inode.prepareSplit(512, 9, 0).abort();
      assertEquals(0, a.metadataBytes(), "an aborted split gives it back too");
      inode.freeFolio(0, 9);
      inode.freeFolio(512, 9);
    }
  }
}
