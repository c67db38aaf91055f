package dev.gmem.alloc.hugetlb;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.HugePagePool;
import dev.gmem.api.spi.HostMemory;

/**
 * Reservations in the host's hugetlb pool, the user-space stand-in for upstream's per-inode
 * subpool: mapping a hugetlbfs range {@code MAP_SHARED} without {@code MAP_NORESERVE} makes the
 * kernel charge {@code resv_hugepages} for every page of it that is not reserved yet, and a
 * shared mapping's reservation stays with the file after the mapping is gone, until the page is
 * punched or the file dies. Surplus pages are never used: the pool must cover a reservation from
 * its persistent pages.
 */
final class PoolReservation {
  private static final int PROT_NONE = 0;

  private PoolReservation() {}

  /** Reserves all of {@code file} at creation: ENOMEM when the pool's persistent pages cannot cover it. */
  static void reserveAll(HostMemory host, HostMemory.MemoryFile file, HugePageSize size) {
    HugePagePool before = pool(host, size);
    long needed = file.size() / size.bytes();
    if (before.available() < needed) {
      throw new GmemException(Errno.ENOMEM, "the " + size + " hugetlb pool has " + before.available() + " pages to reserve (free "
          + before.free() + ", reserved " + before.reserved() + "); the file needs " + needed);
    }
    reserve(file, 0, file.size());
    HugePagePool after = pool(host, size);
    if (after.surplus() > before.surplus()) {
      // Another reservation raced ours and the kernel topped the pool up with surplus pages
      // (only possible with nr_overcommit_hugepages > 0). The caller's close gives ours back.
      throw new GmemException(Errno.ENOMEM, "reserving " + needed + " " + size + " pages took surplus pages ("
          + before.surplus() + " → " + after.surplus() + "); gmem reserves from the persistent pool only");
    }
  }

  /** (Re-)reserves {@code [offset, offset + length)}; a no-op where it is reserved already. ENOMEM when the pool cannot. */
  static void reserve(HostMemory.MemoryFile file, long offset, long length) {
    file.map(offset, length, PROT_NONE, 0).close();
  }

  private static HugePagePool pool(HostMemory host, HugePageSize size) {
    return host.hugePagePools().stream()
        .filter(p -> p.pageSize() == size.bytes())
        .findFirst()
        .orElseThrow(() -> GmemException.einval("the " + size + " hugetlb pool disappeared"));
  }
}
