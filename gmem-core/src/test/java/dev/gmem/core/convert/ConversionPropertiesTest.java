package dev.gmem.core.convert;

import dev.gmem.core.convert.ConversionProperties.Case;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.statistics.Histogram;
import net.jqwik.api.statistics.StatisticsReport;

/**
 * {@link ConversionProperties} over core's fake allocators: 4 KiB folios, 4-page folios split
 * straight to 4 KiB, and 16-page folios split in stages (16 → 4 → 1 pages, as 1 GiB → 2 MiB →
 * 4 KiB).
 */
class ConversionPropertiesTest {

  /** One case on one allocator shape. */
  record Run(int order, int splitOrder, Case c) {}

  @Provide
  Arbitrary<Run> runs() {
    return Arbitraries.of(new int[] {0, 0}, new int[] {2, 0}, new int[] {4, 2})
        .flatMap(shape -> ConversionProperties.cases(1 << shape[0], 48 >> shape[0]).map(c -> new Run(shape[0], shape[1], c)));
  }

  @Property(tries = 10_000)
  @StatisticsReport(format = Histogram.class)
  void failedConversionsChangeNothingAndSuccessfulOnesMatchTheModel(@ForAll("runs") Run r) {
    BlockAllocator allocator = new BlockAllocator(r.order(), r.splitOrder());
    try (TestInode t = new TestInode(r.c().pages(), r.c().initShared(), TestInode.SW_PROTECTED, allocator)) {
      ConversionProperties.check(r.c(), t.inode);
    }
  }
}
