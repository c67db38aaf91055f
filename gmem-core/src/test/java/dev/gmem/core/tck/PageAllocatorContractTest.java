package dev.gmem.core.tck;

import dev.gmem.api.spi.AllocatorProvider;
import dev.gmem.core.alloc.PageAllocatorProvider;
import dev.gmem.tck.AllocatorContractTests;

/** Core's 4 KiB allocator through the allocator contract kit, on the real kernel. */
class PageAllocatorContractTest extends AllocatorContractTests {
  @Override
  protected AllocatorProvider provider() {
    return new PageAllocatorProvider();
  }
}
