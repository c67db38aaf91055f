/** The HugeTLB folio allocator plugin: depends on gmem's API only and exports nothing. */
module dev.gmem.alloc.hugetlb {
  requires dev.gmem.api;

  provides dev.gmem.api.spi.AllocatorProvider with dev.gmem.alloc.hugetlb.HugetlbAllocatorProvider;
}
