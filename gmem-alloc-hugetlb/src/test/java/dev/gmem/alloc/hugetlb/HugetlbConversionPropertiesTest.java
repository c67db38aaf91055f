package dev.gmem.alloc.hugetlb;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.gmem.api.Folio;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.HugePagePool;
import dev.gmem.api.spi.HostMemory;
import dev.gmem.core.convert.ConversionProperties;
import dev.gmem.core.convert.ConversionProperties.Case;
import dev.gmem.core.convert.TestInode;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.AfterTry;
import net.jqwik.api.lifecycle.BeforeContainer;
import net.jqwik.api.lifecycle.BeforeTry;
import net.jqwik.api.statistics.Histogram;
import net.jqwik.api.statistics.StatisticsReport;

/**
 * Core's conversion property ({@link ConversionProperties}: injected failures change nothing,
 * successes match the model, every huge page in normal form) on real 2 MiB pages, with the
 * allocator's own split state checked against core's folios and the pool checked after every try.
 */
class HugetlbConversionPropertiesTest {
  static final int BLOCK = 512;
  static final HugePool POOL = HugePool.of(8, 0);

  private static HostMemory host;
  private HugePagePool beforeTry;

  @BeforeContainer
  static void reservePool() {
    POOL.grow();
    host = TestHost.memory();
  }

  @AfterContainer
  static void restorePool() {
    POOL.restore();
  }

  @BeforeTry
  void recordPool() {
    beforeTry = HugePool.counters(HugePool.MIB2);
  }

  @AfterTry
  void poolIsBack() {
    assertEquals(beforeTry, HugePool.counters(HugePool.MIB2), "the pool after a try");
  }

  @Provide
  Arbitrary<Case> cases() {
    return ConversionProperties.cases(BLOCK, 3);
  }

  @Property(tries = 3000)
  @StatisticsReport(format = Histogram.class)
  void failedConversionsChangeNothingAndSuccessfulOnesMatchTheModel(@ForAll("cases") Case c) {
    HugetlbAllocator allocator = new HugetlbAllocator(host);
    long flags = GmemFlags.MMAP | (c.initShared() ? GmemFlags.INIT_SHARED : 0) | GmemFlags.hugePageSize(21);
    try (TestInode t = new TestInode(c.pages(), flags, TestInode.SW_PROTECTED, allocator)) {
      ConversionProperties.check(c, t.inode);
      HugetlbInode alloc = (HugetlbInode) t.inode.allocator();
      for (Folio f : t.inode.folios(0, c.pages())) {
        assertEquals(f.order(), alloc.orderAt(f.index()), "the allocator's split state at page " + f.index());
      }
    }
    assertEquals(0, allocator.metadataBytes(), "split metadata given back with the inode");
  }
}
