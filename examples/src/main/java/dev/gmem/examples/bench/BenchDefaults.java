package dev.gmem.examples.bench;

/**
 * Run settings every benchmark family declares through JMH's annotations, so that the same defaults
 * apply through {@link BenchMain}, {@code gmem bench} and plain {@code org.openjdk.jmh.Main}.
 * Sized so a full run of the suite stays around 13 minutes on a 2-core VM; every value is
 * overridable on the command line ({@code -f}, {@code -wi}, {@code -w}, {@code -i}, {@code -r}).
 */
final class BenchDefaults {
  static final int FORKS = 2;
  static final int WARMUP_ITERATIONS = 3;
  static final int MEASUREMENT_ITERATIONS = 5;
  /** Seconds per warmup and per measurement iteration. */
  static final int ITERATION_SECONDS = 1;
  /**
   * gmem's native layer (JNR-FFI) needs native access; the flag exists since JDK 17 and is silent
   * there, and it keeps JDK 24+ from warning.
   */
  static final String NATIVE_ACCESS = "--enable-native-access=ALL-UNNAMED";

  static final long PAGE = 4096;

  private BenchDefaults() {}
}
