/**
 * The hugetlb allocator: 2 MiB and 1 GiB folios from the host's real hugetlb pool over a
 * hugetlbfs memfd per inode, reserved whole at creation like upstream's per-inode subpool, split
 * to 4 KiB (1 GiB in stages, through 2 MiB) when pages turn shared and merged back when a huge page
 * is all private again. Depends on gmem-api only; host services come through
 * {@link dev.gmem.api.spi.HostMemory}.
 */
package dev.gmem.alloc.hugetlb;
