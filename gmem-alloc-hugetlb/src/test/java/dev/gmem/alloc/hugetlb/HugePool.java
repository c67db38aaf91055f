package dev.gmem.alloc.hugetlb;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.gmem.api.HugePagePool;
import dev.gmem.core.host.HostProbe;
import dev.gmem.core.host.HugePages;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Real huge pages for a test class, and the pool given back exactly as found. Before all tests
 * it grows each pool by what the class asked for with core's {@link HugePages} (2 MiB must be
 * granted; 1 GiB is tried, and a class whose kernel cannot provide one skips the tests that need
 * it, saying why). Around each test it asserts that free, reserved and surplus pages are back
 * where they were; after all it restores {@code nr_hugepages}.
 *
 * <pre>{@code @RegisterExtension static final HugePool POOL = HugePool.of(16, 1);}</pre>
 */
final class HugePool implements BeforeAllCallback, BeforeEachCallback, AfterEachCallback, AfterAllCallback {
  static final Path SYSFS = HostProbe.SYSFS_HUGEPAGES;
  static final long MIB2 = 2L << 20;
  static final long GIB1 = 1L << 30;

  private final Map<Long, Long> wanted = new LinkedHashMap<>();
  private final Map<Long, HugePages> grown = new LinkedHashMap<>();
  /** Pools checked around each test: every one asked for that exists, granted or not. */
  private final List<Long> watched = new ArrayList<>();
  private final Map<Long, HugePagePool> beforeEach = new LinkedHashMap<>();
  private String oneGiBUnavailable = "the test class asked for no 1 GiB page";

  private HugePool(long twoMiB, long oneGiB) {
    wanted.put(MIB2, twoMiB);
    wanted.put(GIB1, oneGiB);
  }

  /** Grows the 2 MiB pool by {@code twoMiB} pages and tries to grow the 1 GiB pool by {@code oneGiB}. */
  static HugePool of(long twoMiB, long oneGiB) {
    return new HugePool(twoMiB, oneGiB);
  }

  /** Skips the calling test, with the reason, when the kernel granted fewer 1 GiB pages than asked. */
  void assumeOneGiB() {
    Assumptions.assumeTrue(oneGiBUnavailable == null, () -> "no 1 GiB huge page: " + oneGiBUnavailable);
  }

  /** The pool's counters now, as core reads them from sysfs. */
  static HugePagePool counters(long pageSize) {
    return HostProbe.hugePagePools(SYSFS).stream().filter(p -> p.pageSize() == pageSize).findFirst().orElseThrow();
  }

  /** The same pool with {@code free}, {@code reserved} changed by the deltas. */
  static HugePagePool plus(HugePagePool p, long free, long reserved) {
    return new HugePagePool(p.pageSize(), p.total(), p.free() + free, p.reserved() + reserved, p.surplus());
  }

  @Override
  public void beforeAll(ExtensionContext context) {
    grow();
  }

  @Override
  public void beforeEach(ExtensionContext context) {
    for (long size : watched) {
      beforeEach.put(size, counters(size));
    }
  }

  @Override
  public void afterEach(ExtensionContext context) {
    for (Map.Entry<Long, HugePagePool> e : beforeEach.entrySet()) {
      assertEquals(e.getValue(), counters(e.getKey()), HugePageSize.describe(e.getKey()) + " pool after " + context.getDisplayName());
    }
  }

  @Override
  public void afterAll(ExtensionContext context) {
    restore();
  }

  /** Records each pool's size and grows it by what was asked (for test engines other than Jupiter). */
  void grow() {
    for (Map.Entry<Long, Long> e : wanted.entrySet()) {
      long size = e.getKey();
      if (e.getValue() == 0 || !Files.isDirectory(SYSFS.resolve("hugepages-" + (size >> 10) + "kB"))) {
        continue;
      }
      watched.add(size);
      try {
        grown.put(size, HugePages.grow(size, e.getValue()));
        if (size == GIB1) {
          oneGiBUnavailable = null;
        }
      } catch (IllegalStateException refused) {
        if (size != GIB1) {
          throw new AssertionError("the tests need " + e.getValue() + " " + HugePageSize.describe(size) + " pages: "
              + refused.getMessage(), refused);
        }
        oneGiBUnavailable = refused.getMessage();
      }
    }
  }

  /** Gives every grown pool back its size from before {@link #grow()}, and checks it took. */
  void restore() {
    IllegalStateException failure = null;
    for (HugePages pool : grown.values()) {
      try {
        pool.close();
      } catch (IllegalStateException e) {
        failure = failure == null ? e : failure;
      }
    }
    grown.clear();
    watched.clear();
    if (failure != null) {
      throw new AssertionError("a hugetlb pool was not restored to its size before the tests: " + failure.getMessage(), failure);
    }
  }
}
