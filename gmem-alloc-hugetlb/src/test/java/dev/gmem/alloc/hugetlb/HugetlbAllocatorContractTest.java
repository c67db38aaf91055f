package dev.gmem.alloc.hugetlb;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.HugePagePool;
import dev.gmem.api.spi.AllocatorProvider;
import dev.gmem.tck.AllocatorContractTests;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The hugetlb allocator through the allocator contract kit, on 2 MiB pages of the real pool (the
 * pool's counters are checked unchanged around each test).
 */
class HugetlbAllocatorContractTest extends AllocatorContractTests {
  @RegisterExtension
  static final HugePool POOL = HugePool.of(4, 0);

  @Override
  protected AllocatorProvider provider() {
    return new HugetlbAllocatorProvider();
  }

  @Override
  protected long creationFlags() {
    return GmemFlags.hugePageSize(21);
  }

  /** One page more than the pool can still reserve. */
  @Override
  protected long exhaustingSize() {
    HugePagePool p = HugePool.counters(HugePool.MIB2);
    return (p.free() - p.reserved() + 1) * HugePool.MIB2;
  }
}
