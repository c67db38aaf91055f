package dev.gmem.alloc.hugetlb;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.gmem.api.HugePagePool;
import dev.gmem.core.host.HostProbe;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Real huge pages for a test class, and the pool given back exactly as found. Before all tests
 * it records each size's {@code nr_hugepages} and grows the pool by what the class asked for
 * (2 MiB must be granted; 1 GiB is tried, and a class whose kernel cannot provide one skips the
 * tests that need it, saying why). Around each test it asserts that free, reserved and surplus
 * pages are back where they were; after all it restores {@code nr_hugepages}.
 *
 * <pre>{@code @RegisterExtension static final HugePool POOL = HugePool.of(16, 1);}</pre>
 */
final class HugePool implements BeforeAllCallback, BeforeEachCallback, AfterEachCallback, AfterAllCallback {
  static final Path SYSFS = HostProbe.SYSFS_HUGEPAGES;
  static final long MIB2 = 2L << 20;
  static final long GIB1 = 1L << 30;

  private final Map<Long, Long> wanted = new LinkedHashMap<>();
  private final Map<Long, Long> original = new LinkedHashMap<>();
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

  static long overcommit(long pageSize) {
    return read(dir(pageSize).resolve("nr_overcommit_hugepages"));
  }

  static void setOvercommit(long pageSize, long pages) {
    write(dir(pageSize).resolve("nr_overcommit_hugepages"), pages);
  }

  @Override
  public void beforeAll(ExtensionContext context) {
    grow();
  }

  @Override
  public void beforeEach(ExtensionContext context) {
    for (long size : original.keySet()) {
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
      if (e.getValue() == 0 || !Files.isDirectory(dir(size))) {
        continue;
      }
      long before = read(dir(size).resolve("nr_hugepages"));
      original.put(size, before);
      write(dir(size).resolve("nr_hugepages"), before + e.getValue());
      long granted = read(dir(size).resolve("nr_hugepages")) - before;
      if (size == GIB1) {
        oneGiBUnavailable = granted >= e.getValue() ? null
            : "the kernel granted " + granted + " of " + e.getValue() + " (no free physically contiguous gigabyte)";
      } else {
        assertEquals(e.getValue(), granted, "the kernel must grant the " + HugePageSize.describe(size) + " pages these tests need");
      }
    }
  }

  /** Gives every grown pool back its size from before {@link #grow()}. */
  void restore() {
    for (Map.Entry<Long, Long> e : original.entrySet()) {
      write(dir(e.getKey()).resolve("nr_hugepages"), e.getValue());
    }
    for (Map.Entry<Long, Long> e : original.entrySet()) {
      assertEquals(e.getValue(), read(dir(e.getKey()).resolve("nr_hugepages")),
          HugePageSize.describe(e.getKey()) + " pool restored to its size before the tests");
    }
  }

  private static Path dir(long pageSize) {
    return SYSFS.resolve("hugepages-" + (pageSize >> 10) + "kB");
  }

  private static long read(Path p) {
    try {
      return Long.parseLong(Files.readString(p).trim());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static void write(Path p, long value) {
    try {
      Files.writeString(p, value + "\n");
    } catch (IOException e) {
      throw new UncheckedIOException("cannot resize the hugetlb pool (" + p + "): the tests need root", e);
    }
  }
}
