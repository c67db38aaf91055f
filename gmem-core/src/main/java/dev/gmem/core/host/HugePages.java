package dev.gmem.core.host;

import dev.gmem.api.HugePagePool;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Persistent huge pages added to a hugetlb pool for a while, and the pool given back exactly as
 * found: {@link #grow} records the pool's {@code nr_hugepages} and raises it by what the caller
 * needs (failing with the reason, and the pool as found, when the kernel grants fewer);
 * {@link #close} writes the recorded size back and checks that it took. A shutdown hook does the
 * same if the JVM ends first (Ctrl-C, a benchmark fork that dies), so no run leaves pages behind.
 * Needs root. The demo, the benchmarks and the hugetlb tests all reserve their pages this way.
 *
 * <p>Close the gmem files and mappings holding the pages first: pages still in use when the pool
 * shrinks become surplus pages, and the pool's size is not yet back.
 */
public final class HugePages implements AutoCloseable {
  private final long pageSize;
  private final long pages;
  private final Path dir;
  private final long original;
  private final Thread hook;
  private boolean closed;

  private HugePages(long pageSize, long pages, Path dir, long original) {
    this.pageSize = pageSize;
    this.pages = pages;
    this.dir = dir;
    this.original = original;
    this.hook = new Thread(this::restoreQuietly, "gmem-hugepages-restore");
    Runtime.getRuntime().addShutdownHook(hook);
  }

  /**
   * Grows the pool of {@code pageSize} pages by {@code pages}.
   *
   * @throws IllegalStateException with the pool as found, when there is no such pool, when it
   *     cannot be resized (not root), or when the kernel grants fewer pages (no free physically
   *     contiguous memory of that size) or they cannot all be reserved
   */
  public static HugePages grow(long pageSize, long pages) {
    Path dir = dir(pageSize);
    if (!Files.isDirectory(dir)) {
      throw new IllegalStateException("this kernel has no " + describe(pageSize) + " hugetlb pool (" + dir + ")");
    }
    HugePages h = new HugePages(pageSize, pages, dir, read(dir.resolve("nr_hugepages")));
    try {
      write(dir.resolve("nr_hugepages"), h.original + pages);
      long granted = read(dir.resolve("nr_hugepages")) - h.original;
      if (granted < pages) {
        throw new IllegalStateException("the kernel granted " + granted + " of " + pages + " " + describe(pageSize)
            + " huge pages (no free physically contiguous " + describe(pageSize) + " of memory)");
      }
      HugePagePool pool = h.counters();
      if (pool.available() < pages) {
        throw new IllegalStateException("the " + describe(pageSize) + " pool has " + pool.available()
            + " pages to reserve (free " + pool.free() + ", reserved " + pool.reserved() + "); " + pages + " are needed");
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

  /** Bytes per page of this pool. */
  public long pageSize() {
    return pageSize;
  }

  /** The pages added. */
  public long pages() {
    return pages;
  }

  /** {@code nr_hugepages} as found, and as {@link #close} leaves it. */
  public long original() {
    return original;
  }

  /** The pool's counters now. */
  public HugePagePool counters() {
    return HostProbe.hugePagePools(HostProbe.SYSFS_HUGEPAGES).stream()
        .filter(p -> p.pageSize() == pageSize)
        .findFirst()
        .orElseThrow(() -> new IllegalStateException("the " + describe(pageSize) + " hugetlb pool disappeared"));
  }

  /** Free pages in the pool now ({@code free_hugepages}). */
  public long free() {
    return read(dir.resolve("free_hugepages"));
  }

  /**
   * Gives the pool back its size from before {@link #grow}. Idempotent.
   *
   * @throws IllegalStateException when the size did not take (pages still in use)
   */
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
        System.err.println("gmem: could not restore " + dir.resolve("nr_hugepages") + " to " + original + ": " + e.getMessage());
      }
    }
  }

  /** {@code nr_overcommit_hugepages} of the pool of {@code pageSize} pages: surplus the kernel may add on demand. */
  public static long overcommit(long pageSize) {
    return read(dir(pageSize).resolve("nr_overcommit_hugepages"));
  }

  /** Sets {@code nr_overcommit_hugepages}; needs root. */
  public static void setOvercommit(long pageSize, long pages) {
    write(dir(pageSize).resolve("nr_overcommit_hugepages"), pages);
  }

  private static Path dir(long pageSize) {
    return HostProbe.SYSFS_HUGEPAGES.resolve("hugepages-" + (pageSize >> 10) + "kB");
  }

  /** {@code 2 MiB}, {@code 1 GiB}, {@code 64 KiB}. */
  public static String describe(long bytes) {
    return bytes >= 1L << 30 ? (bytes >> 30) + " GiB" : bytes >= 1L << 20 ? (bytes >> 20) + " MiB" : (bytes >> 10) + " KiB";
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
      throw new IllegalStateException("cannot write " + p + ": needs root (" + e + ")", e);
    }
  }
}
