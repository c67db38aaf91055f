package dev.gmem.examples.bench;

import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.core.sys.Sys;
import java.nio.ByteBuffer;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;

/**
 * <b>Hot accessors</b>: an 8-byte read of a shared page that is already faulted in, both in gmem's
 * filemap and in the page tables, at 1, 2 and 4 threads reading the same mapping.
 *
 * <p>gmem: {@link SoftwareVcpu#readLong(long, boolean) vm.softwareVcpu().readLong(gpa, false)} on a
 * GPA inside a bound memslot (memslot lookup, then the guest-fault rules), and
 * {@link HostMapping#getLong} on the same page (the host-fault rules). Both take the lock-free path
 * for a page already faulted: an RCU read-side section around a fast-page-table lookup and the load,
 * no lock and no atomic instruction, so threads share nothing but read-only cache lines. Target:
 * at most 5 ns per read single-threaded, and the same ratio to the baseline at every thread count
 * (linear scaling; on a 2-core machine 4 threads share 2 cores, and so does the baseline).
 *
 * <p>Baseline: {@link ByteBuffer#getLong(int)} on a plain direct buffer over the same file's host
 * mapping, at the same offset and the same thread count: one bounds check and one load, the
 * cheapest way Java reads mapped memory. Everything above it is the price of gmem's checks.
 *
 * <p>The state is shared by the threads ({@link Scope#Benchmark}): one runtime, file, mapping and
 * memslot, as a VMM's vCPU threads share them. Addresses are read from non-final state fields (no
 * constant folding) and results are returned (JMH consumes them in a blackhole, so nothing is dead
 * code). The multi-threaded variants run one fork, to keep the suite's length.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(value = BenchDefaults.FORKS, jvmArgsAppend = BenchDefaults.NATIVE_ACCESS)
@Warmup(iterations = BenchDefaults.WARMUP_ITERATIONS, time = BenchDefaults.ITERATION_SECONDS)
@Measurement(iterations = BenchDefaults.MEASUREMENT_ITERATIONS, time = BenchDefaults.ITERATION_SECONDS)
public class VcpuAccessBench {
  static final long SIZE = 2L << 20;
  static final long GPA_BASE = 0x10_0000;
  /** Page 1, 64 bytes in: aligned, not at a page edge. */
  static final long OFFSET = 0x1040;
  static final long VALUE = 0x0123_4567_89ab_cdefL;
  /** Single-threaded gmem read, ns. */
  static final double TARGET_NANOS = 5;
  /** gmem ÷ raw at any thread count: 5 ns over the 1.5 ns load, with some room. */
  static final double TARGET_RATIO = 4;

  /** A file bound by memslot 0 at {@link #GPA_BASE}, one page written by the host and read by the vCPUs. */
  @State(Scope.Benchmark)
  public static class Hot {
    @Param({"kvm", "memfd"})
    public String backend;

    GmemFixture gmem;
    HostMapping mapping;
    SoftwareVcpu vcpu;
    ByteBuffer buffer;
    long gpa;
    long offset;
    int bufferOffset;

    @Setup(Level.Trial)
    public void open() {
      gmem = GmemFixture.open(backend, SIZE);
      gmem.vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA_BASE, SIZE, gmem.file, 0);
      mapping = gmem.file.map();
      mapping.putLong(OFFSET, VALUE);
      vcpu = gmem.vm.softwareVcpu();
      buffer = Sys.buffer(mapping.address(), (int) SIZE);
      gpa = GPA_BASE + OFFSET;
      offset = OFFSET;
      bufferOffset = (int) OFFSET;
      RawMemory.expect("software vCPU read", VALUE, vcpu.readLong(gpa, false));
      RawMemory.expect("host mapping read", VALUE, mapping.getLong(offset));
      RawMemory.expect("ByteBuffer read", VALUE, buffer.getLong(bufferOffset));
    }

    @TearDown(Level.Trial)
    public void close() {
      buffer = null;
      mapping.close();
      gmem.close();
    }
  }

  // ---- 1 thread

  @Benchmark
  @Paired(baseline = "rawByteBufferGetLong", maxNanos = TARGET_NANOS, maxRatio = TARGET_RATIO)
  public long gmemVcpuReadLong(Hot s) {
    return s.vcpu.readLong(s.gpa, false);
  }

  @Benchmark
  @Paired(baseline = "rawByteBufferGetLong", maxNanos = TARGET_NANOS, maxRatio = TARGET_RATIO)
  public long gmemHostMappingGetLong(Hot s) {
    return s.mapping.getLong(s.offset);
  }

  @Benchmark
  public long rawByteBufferGetLong(Hot s) {
    return s.buffer.getLong(s.bufferOffset);
  }

  // ---- 2 threads

  @Benchmark
  @Threads(2)
  @Fork(value = 1, jvmArgsAppend = BenchDefaults.NATIVE_ACCESS)
  @Paired(baseline = "rawByteBufferGetLong2Threads", maxRatio = TARGET_RATIO)
  public long gmemVcpuReadLong2Threads(Hot s) {
    return s.vcpu.readLong(s.gpa, false);
  }

  @Benchmark
  @Threads(2)
  @Fork(value = 1, jvmArgsAppend = BenchDefaults.NATIVE_ACCESS)
  @Paired(baseline = "rawByteBufferGetLong2Threads", maxRatio = TARGET_RATIO)
  public long gmemHostMappingGetLong2Threads(Hot s) {
    return s.mapping.getLong(s.offset);
  }

  @Benchmark
  @Threads(2)
  @Fork(value = 1, jvmArgsAppend = BenchDefaults.NATIVE_ACCESS)
  public long rawByteBufferGetLong2Threads(Hot s) {
    return s.buffer.getLong(s.bufferOffset);
  }

  // ---- 4 threads

  @Benchmark
  @Threads(4)
  @Fork(value = 1, jvmArgsAppend = BenchDefaults.NATIVE_ACCESS)
  @Paired(baseline = "rawByteBufferGetLong4Threads", maxRatio = TARGET_RATIO)
  public long gmemVcpuReadLong4Threads(Hot s) {
    return s.vcpu.readLong(s.gpa, false);
  }

  @Benchmark
  @Threads(4)
  @Fork(value = 1, jvmArgsAppend = BenchDefaults.NATIVE_ACCESS)
  @Paired(baseline = "rawByteBufferGetLong4Threads", maxRatio = TARGET_RATIO)
  public long gmemHostMappingGetLong4Threads(Hot s) {
    return s.mapping.getLong(s.offset);
  }

  @Benchmark
  @Threads(4)
  @Fork(value = 1, jvmArgsAppend = BenchDefaults.NATIVE_ACCESS)
  public long rawByteBufferGetLong4Threads(Hot s) {
    return s.buffer.getLong(s.bufferOffset);
  }
}
