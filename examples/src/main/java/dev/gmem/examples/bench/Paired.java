package dev.gmem.examples.bench;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Repeatable;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Declares a gmem benchmark's baseline: the raw syscall or C-level access it stands on, a
 * benchmark method of the same class run in the same JMH run with the same parameters.
 * {@link BenchMain} pairs the two results and prints {@code gmem ns/op ÷ baseline ns/op}.
 *
 * <p>Targets are optional; a pair without one is reported for information only. A benchmark may
 * declare several pairs (one row each), e.g. its target pair and an informational one against a
 * raw kernel path doing the same work.
 */
@Documented
@Retention(RetentionPolicy.RUNTIME)
@Target(ElementType.METHOD)
@Repeatable(Paired.List.class)
public @interface Paired {

  /** Name of the baseline {@code @Benchmark} method in the same class. */
  String baseline();

  /**
   * Largest acceptable {@code gmem ns/op ÷ baseline ns/op}; 0 = no ratio target. 1.25 means gmem
   * keeps at least 0.8× of the baseline's throughput.
   */
  double maxRatio() default 0;

  /** Largest acceptable gmem ns/op; 0 = no absolute target. */
  double maxNanos() default 0;

  /**
   * For {@code Mode.SampleTime} benchmarks: compare this percentile of the gmem side's sampled
   * latencies (e.g. 99) instead of its mean; 0 = the mean.
   */
  double gmemPercentile() default 0;

  /** As {@link #gmemPercentile()}, for the baseline (e.g. 50: a p99 measured against an idle p50). */
  double baselinePercentile() default 0;

  /**
   * For a pair without a target: what its ratio means, shown in the target column instead of
   * {@code -} (e.g. that a raw side's own 4-vs-1 scaling is not gmem's target).
   */
  String info() default "";

  /** Several pairs of one benchmark. */
  @Documented
  @Retention(RetentionPolicy.RUNTIME)
  @Target(ElementType.METHOD)
  @interface List {
    Paired[] value();
  }
}
