package dev.gmem.examples.bench;

import static dev.gmem.examples.bench.BenchDefaults.PAGE;

import dev.gmem.api.HostMapping;
import dev.gmem.core.sys.Sys;
import java.nio.ByteBuffer;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * <b>First-touch fault</b>, per page: the first write of one {@code long} to each page of an
 * 8 MiB file whose pages are all absent, through a mapping made just before.
 *
 * <p>gmem: {@link HostMapping#putLong} on a fresh {@code HostMapping} of an {@code INIT_SHARED}
 * file — range check, invalidate lock (shared), the host-fault rules (shareability, arch verdict,
 * fault interceptors), filemap insertion of the folio, then the store, which takes the kernel's
 * page fault (allocate and zero a page, install the PTE).
 *
 * <p>Baseline: the same store through a plain {@link ByteBuffer} over a raw {@code mmap} of a raw
 * guest_memfd ({@code KVM_CREATE_GUEST_MEMFD}, {@code MMAP|INIT_SHARED}) or memfd, as the
 * {@code backend} param says. That is the floor: the kernel's fault is the work both sides must do,
 * a {@code ByteBuffer} store is an unchecked-speed native store, and nothing else runs.
 *
 * <p>Each invocation writes every page once ({@code @OperationsPerInvocation(PAGES)}, so the score
 * is per page). The untimed per-invocation setup unmaps the previous mapping, punches the whole
 * file (both sides: the pages are really freed, checked with {@code mincore}; on the gmem side
 * through a short-lived mapping, so the measured one never hands its raw view out and the file is
 * mapped once on each side) and maps it again.
 * An invocation takes milliseconds, so {@code Level.Invocation} timestamps are noise.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(value = BenchDefaults.FORKS, jvmArgsAppend = BenchDefaults.NATIVE_ACCESS)
@Warmup(iterations = BenchDefaults.WARMUP_ITERATIONS, time = BenchDefaults.ITERATION_SECONDS)
@Measurement(iterations = BenchDefaults.MEASUREMENT_ITERATIONS, time = BenchDefaults.ITERATION_SECONDS)
public class FirstTouchBench {
  static final int PAGES = 2048;
  static final long SIZE = PAGES * PAGE;

  /** A gmem file on the backend; a fresh mapping of it, all pages absent, per invocation. */
  @State(Scope.Thread)
  public static class GmemSide {
    @Param({"kvm", "memfd"})
    public String backend;

    GmemFixture gmem;
    HostMapping mapping;

    @Setup(Level.Trial)
    public void open() {
      gmem = GmemFixture.open(backend, SIZE);
    }

    @Setup(Level.Invocation)
    public void freshMapping() {
      if (mapping != null) {
        RawMemory.expect("pages gmem allocated in the last invocation", PAGES, gmem.file.inode().allocatedPages());
        RawMemory.expect("pages resident after the last invocation", PAGES, RawMemory.residentPages(gmem.file, SIZE));
        mapping.close();
      }
      gmem.file.punchHole(0, SIZE);
      mapping = gmem.file.map();
      RawMemory.expect("pages resident after the punch", 0, RawMemory.residentPages(gmem.file, SIZE));
    }

    @TearDown(Level.Trial)
    public void close() {
      if (mapping != null) {
        mapping.close();
      }
      gmem.close();
    }
  }

  /** A raw guest_memfd or memfd; a fresh raw mapping of it, all pages absent, per invocation. */
  @State(Scope.Thread)
  public static class RawSide {
    @Param({"kvm", "memfd"})
    public String backend;

    RawMemory raw;
    long address;
    ByteBuffer buffer;

    @Setup(Level.Trial)
    public void open() {
      raw = RawMemory.open(backend, SIZE);
    }

    @Setup(Level.Invocation)
    public void freshMapping() {
      if (address != 0) {
        RawMemory.expect("pages resident after the last invocation", PAGES, RawMemory.residentPages(address, SIZE));
        buffer = null;
        raw.unmap(address);
      }
      raw.punchAll();
      address = raw.map();
      buffer = Sys.buffer(address, (int) SIZE);
      RawMemory.expect("pages resident after the punch", 0, RawMemory.residentPages(address, SIZE));
    }

    @TearDown(Level.Trial)
    public void close() {
      raw.close();
    }
  }

  @Benchmark
  @OperationsPerInvocation(PAGES)
  @Paired(baseline = "rawFirstTouch", maxRatio = 1.25)
  public void gmemFirstTouch(GmemSide s) {
    HostMapping m = s.mapping;
    for (long off = 0; off < SIZE; off += PAGE) {
      m.putLong(off, off);
    }
  }

  @Benchmark
  @OperationsPerInvocation(PAGES)
  public void rawFirstTouch(RawSide s) {
    ByteBuffer b = s.buffer;
    for (int off = 0; off < SIZE; off += PAGE) {
      b.putLong(off, off);
    }
  }
}
