package dev.gmem.api;

/**
 * One hugetlb pool of the host ({@code /sys/kernel/mm/hugepages/hugepages-<size>kB}).
 *
 * @param pageSize bytes per huge page
 * @param total    {@code nr_hugepages}
 * @param free     {@code free_hugepages}
 * @param reserved {@code resv_hugepages}
 * @param surplus  {@code surplus_hugepages}
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public record HugePagePool(long pageSize, long total, long free, long reserved, long surplus) {

  /** Pages that a new reservation could still take. */
  public long available() {
    return Math.max(0, free - reserved);
  }
}
