package dev.gmem.alloc.hugetlb;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.HostInfo;
import dev.gmem.api.HugePagePool;
import dev.gmem.api.spi.AllocatorProvider;
import dev.gmem.api.spi.FolioAllocator;
import dev.gmem.api.spi.HostMemory;
import dev.gmem.api.spi.Support;
import java.util.StringJoiner;

/**
 * Registers the hugetlb allocator (id {@code hugetlb}). It claims the huge-page-size field of the
 * creation flags, so {@code vm.createGuestMemFile(size, MMAP | GmemFlags.hugePageSize(21))} gets
 * 2 MiB folios and {@code hugePageSize(30)} 1 GiB ones; supported wherever the kernel has hugetlb
 * pools, whose sizes and counts its probe reports.
 */
public final class HugetlbAllocatorProvider implements AllocatorProvider {
  public static final String ID = "hugetlb";

  @Override
  public String id() {
    return ID;
  }

  @Override
  public long creationFlags() {
    return GmemFlags.HUGE_PAGE_MASK;
  }

  @Override
  public Support probe(HostInfo host) {
    if (host.hugePagePools().isEmpty()) {
      return Support.no("no hugetlb pools under /sys/kernel/mm/hugepages (kernel without hugetlbfs?)");
    }
    StringJoiner pools = new StringJoiner("; ", "pools: ", "");
    for (HugePagePool p : host.hugePagePools()) {
      pools.add(HugePageSize.describe(p.pageSize()) + " total " + p.total() + ", free " + p.free() + ", reserved " + p.reserved()
          + ", surplus " + p.surplus());
    }
    return Support.yes(pools.toString());
  }

  @Override
  public FolioAllocator create(HostMemory host) {
    return new HugetlbAllocator(host);
  }
}
