package dev.gmem.arch.tdx.module;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

/**
 * Whether the host has a CPU to spare for the measurement engine, by behaviour: the kernel's CPU
 * pressure stall information ({@code /proc/pressure/cpu}, "some avg10": the share of the last 10 s
 * in which a runnable task waited for a CPU) below {@link #SPARE_BELOW_PERCENT}. A second thread
 * pays only where it gets a CPU of its own; on a contended host its wake-ups and preemptions
 * (the populate waits for a job the engine was preempted in) made a measured populate several
 * times slower than hashing inline. Without PSI ({@code CONFIG_PSI} off) there is no spare CPU
 * to count on. Read at most every {@link #REREAD_NANOS}.
 */
final class CpuPressure implements BooleanSupplier {
  static final double SPARE_BELOW_PERCENT = 10.0;
  private static final Path PSI = Path.of("/proc/pressure/cpu");
  private static final long REREAD_NANOS = TimeUnit.MILLISECONDS.toNanos(100);

  private volatile long readAt = System.nanoTime() - REREAD_NANOS;
  private volatile boolean spare;

  @Override
  public boolean getAsBoolean() {
    long now = System.nanoTime();
    if (now - readAt >= REREAD_NANOS) {
      spare = read();
      readAt = now;
    }
    return spare;
  }

  private static boolean read() {
    try {
      List<String> lines = Files.readAllLines(PSI);
      return !lines.isEmpty() && someAvg10(lines.get(0)) < SPARE_BELOW_PERCENT;
    } catch (IOException | RuntimeException e) {
      return false;
    }
  }

  /** "some avg10=1.23 avg60=… avg300=… total=…" → 1.23. */
  static double someAvg10(String line) {
    for (String field : line.split(" ")) {
      if (field.startsWith("avg10=")) {
        return Double.parseDouble(field.substring("avg10=".length()));
      }
    }
    throw new IllegalArgumentException("no avg10 in " + line);
  }
}
