package dev.gmem.core.sys;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * gmem's share of the process's {@code vm.max_map_count}. The limit is the process's, and the JVM
 * needs VMAs of its own at any moment (heap commits, thread stacks and their guard pages, the
 * code cache): when mmap fails there, HotSpot aborts ({@code os::commit_memory … errno=12})
 * instead of throwing. So gmem counts the VMAs it creates (host mappings' runs of file and
 * SIGBUS memory, transient spares) and refuses with ENOMEM — before changing anything — once they
 * would pass half the limit, leaving the other half to the JVM and the rest of the process.
 */
public final class MapCountBudget {
  private static final Path SYSCTL = Path.of("/proc/sys/vm/max_map_count");
  /** The kernel's default, used where the sysctl cannot be read. */
  static final long DEFAULT_MAX_MAP_COUNT = 65_530;
  private static final MapCountBudget PROCESS = new MapCountBudget(() -> readMaxMapCount() / 2);

  private final java.util.function.LongSupplier limitSource;
  private volatile long limit;
  private final AtomicLong used = new AtomicLong();

  MapCountBudget(java.util.function.LongSupplier limitSource) {
    this.limitSource = limitSource;
    this.limit = limitSource.getAsLong();
  }

  /** The budget of this process. */
  public static MapCountBudget process() {
    return PROCESS;
  }

  /** VMAs gmem may hold at most. */
  public long limit() {
    return limit;
  }

  /** VMAs gmem holds (or has reserved) now. */
  public long used() {
    return used.get();
  }

  /**
   * Takes {@code n} VMAs for good (until released); ENOMEM, taking nothing, when gmem would pass
   * its share. The sysctl is read again before refusing, in case it was raised.
   */
  public void reserve(long n) {
    reserve(n, 0);
  }

  /**
   * Takes {@code n} VMAs that live only until the current operation ends (a spare mapping moved
   * into place, a copy buffer): they may go {@link #TRANSIENT_SLACK} past the share, which still
   * leaves the JVM nearly half the limit, so that an operation that ends with fewer VMAs (a
   * remap joining islands) is not refused for the moment it holds one more.
   */
  public void reserveTransient(long n) {
    reserve(n, TRANSIENT_SLACK);
  }

  /** VMAs transient reservations may take beyond the share. */
  public static final long TRANSIENT_SLACK = 1024;

  private void reserve(long n, long slack) {
    if (n <= 0) {
      release(-n);
      return;
    }
    if (tryReserve(n, slack)) {
      return;
    }
    limit = limitSource.getAsLong();
    if (!tryReserve(n, slack)) {
      throw new GmemException(Errno.ENOMEM, "gmem would hold " + (used.get() + n) + " VMAs, more than its share " + limit
          + " of vm.max_map_count (the rest is the JVM's); fewer private islands in raw-accessed host mappings, or raise the sysctl");
    }
  }

  private boolean tryReserve(long n, long slack) {
    for (;;) {
      long u = used.get();
      if (u + n > limit + slack) {
        return false;
      }
      if (used.compareAndSet(u, u + n)) {
        return true;
      }
    }
  }

  /** Takes {@code n} VMAs without refusing: for what must happen after a point of no return. */
  public void charge(long n) {
    used.addAndGet(n);
  }

  /** Gives back {@code n} VMAs. */
  public void release(long n) {
    used.addAndGet(-n);
  }

  static long readMaxMapCount() {
    try {
      // Not Files.readString: procfs reports st_size 0 and the JDK then returns one byte.
      List<String> lines = Files.readAllLines(SYSCTL);
      return lines.isEmpty() ? DEFAULT_MAX_MAP_COUNT : Long.parseLong(lines.get(0).trim());
    } catch (IOException | NumberFormatException | SecurityException e) {
      return DEFAULT_MAX_MAP_COUNT;
    }
  }
}
