package dev.gmem.examples.bench;

import dev.gmem.api.HostMapping;
import dev.gmem.api.Prot;
import dev.gmem.api.Shareability;
import dev.gmem.api.VmType;
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
 * <b>In-place conversion</b> of guest_memfd memory, each beside the syscall floor a user-space
 * implementation stands on.
 *
 * <ul>
 *   <li>{@code gmemConvert1GiB}: 1 GiB of allocated 4 KiB folios, mapped by the host, converted to
 *       private and back ({@code setShareability} twice). Baseline: the {@code mprotect(PROT_NONE)}
 *       and {@code mprotect(PROT_READ|PROT_WRITE)} calls over the same 1 GiB of a raw mapping — the
 *       least any user-space enforcement of a raw mapping must pay. Target: ≤ 1.25× the floor.
 *       {@code populated=false}: the host mapping is used through its accessors only, its raw view
 *       is never handed out, so there is nothing to cover: validation, store updates and the
 *       reference check over 262,144 folios. {@code populated=true}: the raw view is handed out
 *       ({@code buffer()}) and every page touched through it when the conversion starts; to-private
 *       covers the GiB and detaches every page (copy aside, punch, refill, copy back: a kernel
 *       reference taken through the raw view must not see the guest's later private writes), and
 *       to-shared moves a spare file mapping into place. mprotect merely rewrites page tables, so
 *       this row measures what that guarantee costs; it misses the target by far.
 *   <li>{@code gmemMetadataPerPage}: the same round trip of 1 GiB with no folios and no mapping:
 *       the shareability store alone, reported per page. Target: ≥ 10M pages/s, i.e. ≤ 100 ns per
 *       page. Baseline: a byte-per-page attribute array filled twice (a flat array's cost).
 *   <li>{@code gmemAlternatingSinglePages}: 262,144 single-page conversions of every other page of
 *       a 2 GiB file to private (262,144 ranges in the end), then back, reported per conversion.
 *       Baseline: one {@code mprotect} of one page per conversion on a raw mapping, over 16,384
 *       alternating pages (more would pass {@code vm.max_map_count}).
 * </ul>
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(value = BenchDefaults.FORKS, jvmArgsAppend = BenchDefaults.NATIVE_ACCESS)
@Warmup(iterations = BenchDefaults.WARMUP_ITERATIONS, time = BenchDefaults.ITERATION_SECONDS)
@Measurement(iterations = BenchDefaults.MEASUREMENT_ITERATIONS, time = BenchDefaults.ITERATION_SECONDS)
public class ConversionBench {
  static final long GIB = 1L << 30;
  static final long PAGE = BenchDefaults.PAGE;
  static final int ALTERNATING = 262_144;
  /**
   * The raw baseline converts fewer pages: every mprotect'ed island is a VMA, and 262,144 of them
   * exceed {@code vm.max_map_count} (65,530). The result is per conversion either way.
   */
  static final int RAW_ALTERNATING = 16_384;

  /** A 1 GiB file of a SW_PROTECTED VM with every 4 KiB folio allocated and one host mapping. */
  @State(Scope.Thread)
  public static class Gmem1GiB {
    @Param({"kvm", "memfd"})
    public String backend;

    @Param({"false", "true"})
    public boolean populated;

    GmemFixture gmem;
    HostMapping mapping;
    long size;
    /** Keeps the page-touching loads alive. */
    public long sink;

    @Setup(Level.Trial)
    public void open() {
      gmem = GmemFixture.open(backend, GIB, VmType.SW_PROTECTED);
      gmem.file.allocate(0, GIB);
      mapping = gmem.file.map();
      size = GIB;
      RawMemory.expect("allocated pages", GIB / PAGE, gmem.file.inode().allocatedPages());
    }

    @Setup(Level.Invocation)
    public void touch() {
      if (populated) {
        // One touch per page through a raw view fills the page tables; the file stays shared.
        var b = mapping.buffer(0, (int) Math.min(GIB, Integer.MAX_VALUE - PAGE));
        long sum = 0;
        for (int off = 0; off < b.capacity(); off += (int) PAGE) {
          sum += b.get(off);
        }
        sink = sum;
      }
    }

    @TearDown(Level.Trial)
    public void close() {
      mapping.close();
      gmem.close();
    }
  }

  /** The same 1 GiB as a raw guest_memfd (or memfd) mapping. */
  @State(Scope.Thread)
  public static class Raw1GiB {
    @Param({"kvm", "memfd"})
    public String backend;

    @Param({"false", "true"})
    public boolean populated;

    RawMemory raw;
    long address;
    long size;
    /** Keeps the page-touching loads alive. */
    public long sink;

    @Setup(Level.Trial)
    public void open() {
      raw = RawMemory.open(backend, GIB);
      raw.allocateAll();
      address = raw.map();
      size = GIB;
    }

    @Setup(Level.Invocation)
    public void touch() {
      if (populated) {
        var b = dev.gmem.core.sys.Sys.buffer(address, (int) Math.min(GIB, Integer.MAX_VALUE - PAGE));
        long sum = 0;
        for (int off = 0; off < b.capacity(); off += (int) PAGE) {
          sum += b.get(off);
        }
        sink = sum;
      }
    }

    @TearDown(Level.Trial)
    public void close() {
      raw.close();
    }
  }

  @Benchmark
  @Paired(baseline = "rawMprotect1GiB", maxRatio = 1.25)
  public long gmemConvert1GiB(Gmem1GiB s) {
    s.gmem.file.setShareability(0, s.size, Shareability.PRIVATE);
    s.gmem.file.setShareability(0, s.size, Shareability.SHARED);
    return s.gmem.file.inode().allocatedPages();
  }

  @Benchmark
  public int rawMprotect1GiB(Raw1GiB s) {
    int a = RawMemory.libc().mprotect(s.address, s.size, Prot.NONE);
    int b = RawMemory.libc().mprotect(s.address, s.size, Prot.READ_WRITE);
    if ((a | b) != 0) {
      throw new IllegalStateException("mprotect failed");
    }
    return a + b;
  }

  /** Metadata only: a file with no folios and no mapping. */
  @State(Scope.Thread)
  public static class Metadata {
    GmemFixture gmem;
    byte[] flat;

    @Setup(Level.Trial)
    public void open() {
      gmem = GmemFixture.open("memfd", GIB, VmType.SW_PROTECTED);
      flat = new byte[(int) (GIB / PAGE)];
    }

    @TearDown(Level.Trial)
    public void close() {
      gmem.close();
    }
  }

  @Benchmark
  @OperationsPerInvocation(2 * (int) (GIB / PAGE))
  @Paired(baseline = "flatArrayPerPage", maxNanos = 100)
  public Shareability gmemMetadataPerPage(Metadata s) {
    s.gmem.file.setShareability(0, GIB, Shareability.PRIVATE);
    s.gmem.file.setShareability(0, GIB, Shareability.SHARED);
    return s.gmem.file.shareability(GIB - PAGE);
  }

  @Benchmark
  @OperationsPerInvocation(2 * (int) (GIB / PAGE))
  public byte flatArrayPerPage(Metadata s) {
    java.util.Arrays.fill(s.flat, (byte) 1);
    java.util.Arrays.fill(s.flat, (byte) 0);
    return s.flat[s.flat.length - 1];
  }

  /** A 2 GiB file whose every other page gets converted on its own. */
  @State(Scope.Thread)
  public static class Alternating {
    @Param({"kvm", "memfd"})
    public String backend;

    GmemFixture gmem;
    RawMemory raw;
    long rawAddress;

    @Setup(Level.Trial)
    public void open() {
      gmem = GmemFixture.open(backend, 2 * GIB, VmType.SW_PROTECTED);
      raw = RawMemory.open(backend, 2 * GIB);
      rawAddress = raw.map();
    }

    @TearDown(Level.Trial)
    public void close() {
      raw.close();
      gmem.close();
    }
  }

  @Benchmark
  @OperationsPerInvocation(2 * ALTERNATING)
  @Paired(baseline = "rawMprotectAlternating")
  public long gmemAlternatingSinglePages(Alternating s) {
    for (long i = 0; i < ALTERNATING; i++) {
      s.gmem.file.setShareability(2 * i * PAGE, PAGE, Shareability.PRIVATE);
    }
    long ranges = s.gmem.file.inode().shareabilityRanges(0, 2 * GIB / PAGE).size();
    for (long i = 0; i < ALTERNATING; i++) {
      s.gmem.file.setShareability(2 * i * PAGE, PAGE, Shareability.SHARED);
    }
    return ranges;
  }

  @Benchmark
  @OperationsPerInvocation(2 * RAW_ALTERNATING)
  public int rawMprotectAlternating(Alternating s) {
    int r = 0;
    for (long i = 0; i < RAW_ALTERNATING; i++) {
      r |= RawMemory.libc().mprotect(s.rawAddress + 2 * i * PAGE, PAGE, Prot.NONE);
    }
    for (long i = 0; i < RAW_ALTERNATING; i++) {
      r |= RawMemory.libc().mprotect(s.rawAddress + 2 * i * PAGE, PAGE, Prot.READ_WRITE);
    }
    if (r != 0) {
      throw new IllegalStateException("mprotect failed");
    }
    return r;
  }
}
