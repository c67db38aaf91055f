package dev.gmem.examples.bench;

import dev.gmem.api.HugePagePool;
import dev.gmem.core.host.HostProbe;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Real huge pages for one benchmark trial, and the pool given back exactly as found: {@link #grow}
 * records the pool's {@code nr_hugepages} and grows it by what the trial needs (failing with the
 * reason when the kernel grants fewer); {@link #close} writes the recorded size back and checks it
 * took. A shutdown hook does the same if the fork ends without the trial's teardown (a benchmark
 * that threw), so a failed run does not leave pages behind. Needs root.
 *
 * <p>Close the gmem files and raw mappings holding the pages first: pages still in use when the
 * pool shrinks become surplus pages and the pool's size is not yet back.
 */
final class HugePages implements AutoCloseable {
  private final long pageSize;
  private final Path dir;
  private final long original;
  private final Thread hook;
  private boolean closed;

  private HugePages(long pageSize, Path dir, long original) {
    this.pageSize = pageSize;
    this.dir = dir;
    this.original = original;
    this.hook = new Thread(this::restoreQuietly, "gmem-bench-hugepages-restore");
    Runtime.getRuntime().addShutdownHook(hook);
  }

  /**
   * Grows the pool of {@code pageSize} pages by {@code pages}. Fails, with the pool as found,
   * when there is no such pool, when it cannot be resized (not root) or when the kernel grants
   * fewer pages (no free physically contiguous memory of that size).
   */
  static HugePages grow(long pageSize, long pages) {
    Path dir = HostProbe.SYSFS_HUGEPAGES.resolve("hugepages-" + (pageSize >> 10) + "kB");
    if (!Files.isDirectory(dir)) {
      throw new IllegalStateException("this kernel has no " + describe(pageSize) + " hugetlb pool (" + dir + ")");
    }
    HugePages h = new HugePages(pageSize, dir, read(dir.resolve("nr_hugepages")));
    try {
      write(dir.resolve("nr_hugepages"), h.original + pages);
      long granted = read(dir.resolve("nr_hugepages")) - h.original;
      if (granted < pages) {
        throw new IllegalStateException("no " + describe(pageSize) + " huge page for this benchmark: the kernel granted " + granted
            + " of " + pages + " (no free physically contiguous " + describe(pageSize) + " of memory), so it cannot run here");
      }
      HugePagePool pool = h.counters();
      if (pool.available() < pages) {
        throw new IllegalStateException("the " + describe(pageSize) + " pool has " + pool.available() + " pages to reserve (free "
            + pool.free() + ", reserved " + pool.reserved() + "); this benchmark needs " + pages);
      }
      return h;
    } catch (RuntimeException e) {
      try {
        h.close();
      } catch (RuntimeException suppressed) {
        e.addSuppressed(suppressed);
      }
      throw e;
    }
  }

  /** The pool's counters now. */
  HugePagePool counters() {
    return HostProbe.hugePagePools(HostProbe.SYSFS_HUGEPAGES).stream()
        .filter(p -> p.pageSize() == pageSize)
        .findFirst()
        .orElseThrow(() -> new IllegalStateException("the " + describe(pageSize) + " hugetlb pool disappeared"));
  }

  /** Free pages in the pool now ({@code free_hugepages}). */
  long free() {
    return read(dir.resolve("free_hugepages"));
  }

  /** Gives the pool back its size from before {@link #grow}; fails if it did not take. Idempotent. */
  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    try {
      Runtime.getRuntime().removeShutdownHook(hook);
    } catch (IllegalStateException shuttingDown) {
      // the hook is running or about to: restoring twice is harmless
    }
    write(dir.resolve("nr_hugepages"), original);
    long now = read(dir.resolve("nr_hugepages"));
    if (now != original) {
      throw new IllegalStateException("the " + describe(pageSize) + " pool is at " + now + " pages, not " + original
          + " as found: pages still in use (a file or mapping not closed?) are given back when released");
    }
  }

  private synchronized void restoreQuietly() {
    if (!closed) {
      try {
        write(dir.resolve("nr_hugepages"), original);
      } catch (RuntimeException e) {
        System.err.println("gmem bench: could not restore " + dir.resolve("nr_hugepages") + " to " + original + ": " + e.getMessage());
      }
    }
  }

  static String describe(long bytes) {
    return bytes >= 1L << 30 ? (bytes >> 30) + " GiB" : (bytes >> 20) + " MiB";
  }

  private static long read(Path p) {
    try {
      return Long.parseLong(Files.readString(p).trim());
    } catch (IOException e) {
      throw new IllegalStateException("cannot read " + p + ": " + e, e);
    }
  }

  private static void write(Path p, long value) {
    try {
      Files.writeString(p, value + "\n");
    } catch (IOException e) {
      throw new IllegalStateException("cannot resize the hugetlb pool (" + p + "): the hugetlb benchmarks need root (" + e + ")", e);
    }
  }
}
