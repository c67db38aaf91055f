/**
 * JMH benchmarks: each gmem operation beside the raw syscall or C-level access it stands on, in
 * the same run, reported as a ratio ({@link dev.gmem.examples.bench.BenchMain}, {@code gmem bench}).
 * One class per benchmark family; pairs and targets are declared with
 * {@link dev.gmem.examples.bench.Paired} on the gmem method.
 */
package dev.gmem.examples.bench;
