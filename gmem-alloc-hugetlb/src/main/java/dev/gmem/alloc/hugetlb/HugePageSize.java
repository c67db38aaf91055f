package dev.gmem.alloc.hugetlb;

import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.HugePagePool;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/**
 * A huge page size, chosen at file creation by upstream's flag encoding ({@code log2(size) << 58},
 * 0 = the kernel's default size).
 *
 * @param log2 log2 of the page size in bytes: 21 for 2 MiB, 30 for 1 GiB
 */
record HugePageSize(int log2) {
  /** Largest folio order the filemap holds: a 1 GiB page. */
  static final int MAX_ORDER = Folio.PUD_ORDER;

  /** {@code MFD_HUGETLB}. */
  private static final int MFD_HUGETLB = 0x4;
  /** {@code MFD_HUGE_SHIFT}: memfd_create takes the same log2, at bit 26. */
  private static final int MFD_HUGE_SHIFT = 26;

  /**
   * The size {@code flags} ask for, if the host has a pool of it: EINVAL for a size no pool has
   * (upstream: no hstate) or that the filemap cannot hold.
   */
  static HugePageSize of(long flags, List<HugePagePool> pools) {
    int log2 = GmemFlags.hugePageLog2(flags);
    if (log2 == 0) {
      log2 = kernelDefault(pools);
    }
    HugePageSize size = new HugePageSize(log2);
    if (log2 <= Folio.PAGE_SHIFT || size.order() > MAX_ORDER) {
      throw GmemException.einval("huge page size 2^" + log2 + " is not a folio size gmem supports (2^13 .. 2^30)");
    }
    if (pools.stream().noneMatch(p -> p.pageSize() == size.bytes())) {
      throw GmemException.einval("no hugetlb pool of " + size + " pages on this host (pools: "
          + String.join(", ", pools.stream().map(p -> describe(p.pageSize())).toList()) + ")");
    }
    return size;
  }

  /** {@code Hugepagesize} of /proc/meminfo (the default hstate), else the smallest pool's size. */
  private static int kernelDefault(List<HugePagePool> pools) {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
        if (line.startsWith("Hugepagesize:")) {
          long kib = Long.parseLong(line.replaceAll("\\D+", ""));
          return Long.numberOfTrailingZeros(kib << 10);
        }
      }
    } catch (IOException | NumberFormatException e) {
      // fall through to the pools
    }
    Optional<HugePagePool> smallest = pools.stream().findFirst();
    return smallest.map(p -> Long.numberOfTrailingZeros(p.pageSize())).orElse(21);
  }

  long bytes() {
    return 1L << log2;
  }

  /** Folio order: {@link Folio#PMD_ORDER} for 2 MiB, {@link Folio#PUD_ORDER} for 1 GiB. */
  int order() {
    return log2 - Folio.PAGE_SHIFT;
  }

  /** memfd_create flags for a hugetlbfs file of this page size. */
  int memfdFlags() {
    return MFD_HUGETLB | (log2 << MFD_HUGE_SHIFT);
  }

  @Override
  public String toString() {
    return describe(bytes());
  }

  static String describe(long bytes) {
    return bytes >= 1L << 30 ? (bytes >> 30) + " GiB" : bytes >= 1L << 20 ? (bytes >> 20) + " MiB" : (bytes >> 10) + " KiB";
  }
}
