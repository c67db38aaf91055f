package dev.gmem.examples.bench;

import com.google.common.collect.Range;
import com.google.common.collect.RangeMap;
import com.google.common.collect.TreeRangeMap;
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
 *   <li>{@code gmemFragmented}: the shareability store of a 1 GiB file (no folios, no mapping)
 *       fragmented into 262,144 runs (every other page private), converted whole to shared or to
 *       private ({@code target}) in one call, which has to visit every run; reported per page.
 *       Baseline: a Guava {@code TreeRangeMap} holding the same 262,144 runs, {@code put} over the
 *       whole range (the same logical update in a generic range map). Targets: ≤ 100 ns per page
 *       and ≤ 2× the range map. Both are fragmented again before each call, outside the
 *       measurement.
 *   <li>{@code gmemAlternatingSinglePages}: 16,384 single-page conversions of every other page of a
 *       128 MiB allocated file with a live host mapping to private (32,768 runs in the end), then
 *       back, reported per conversion. Baseline: one {@code mprotect} of one page per conversion,
 *       the same 16,384 pages, on a raw mapping of the same allocated file, then back: the least
 *       a user-space implementation pays to make a page of a mapping fault and to undo it. The
 *       gmem mapping is used through its accessors (its raw view is never handed out), so gmem
 *       makes no VMA per island; the raw side's islands are VMAs and stay within
 *       {@code vm.max_map_count} (gmem's and the raw mapping are never alive at once). Target: ≤
 *       4× the mprotect floor.
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
  /** Pages of 1 GiB. */
  static final int PAGES = (int) (GIB / PAGE);
  /**
   * Single-page conversions per direction. Each private island of a host mapping is a VMA on both
   * sides, and 2 × 16,384 + 1 stays well below {@code vm.max_map_count} (65,530) with the JVM's own.
   */
  static final int ALTERNATING = 16_384;

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

  /**
   * A 1 GiB SW_PROTECTED file with no folios and no mapping whose shareability store holds 262,144
   * runs (even pages private, odd pages shared) when each measured call starts.
   */
  @State(Scope.Thread)
  public static class Fragmented {
    @Param({"SHARED", "PRIVATE"})
    public Shareability target;

    GmemFixture gmem;

    @Setup(Level.Trial)
    public void open() {
      gmem = GmemFixture.open("memfd", GIB, VmType.SW_PROTECTED);
      for (long page = 0; page < PAGES; page += 2) {
        gmem.file.setShareability(page * PAGE, PAGE, Shareability.PRIVATE);
      }
    }

    /** Undoes the measured call page by page: the pages it changed go back to their alternating state. */
    @Setup(Level.Invocation)
    public void fragment() {
      Shareability undo = target == Shareability.SHARED ? Shareability.PRIVATE : Shareability.SHARED;
      for (long page = target == Shareability.SHARED ? 0 : 1; page < PAGES; page += 2) {
        if (gmem.file.shareability(page * PAGE) != undo) {
          gmem.file.setShareability(page * PAGE, PAGE, undo);
        }
      }
      RawMemory.expect("shareability runs before the conversion", PAGES, gmem.file.inode().shareabilityRanges(0, PAGES).size());
    }

    @TearDown(Level.Trial)
    public void close() {
      gmem.close();
    }
  }

  /** The same 262,144 runs in a Guava range map, page index → shareability. */
  @State(Scope.Thread)
  public static class FragmentedRangeMap {
    @Param({"SHARED", "PRIVATE"})
    public Shareability target;

    final RangeMap<Long, Shareability> runs = TreeRangeMap.create();

    @Setup(Level.Invocation)
    public void fragment() {
      runs.clear();
      for (long page = 0; page < PAGES; page++) {
        runs.put(Range.closedOpen(page, page + 1), page % 2 == 0 ? Shareability.PRIVATE : Shareability.SHARED);
      }
    }
  }

  @Benchmark
  @OperationsPerInvocation(PAGES)
  @Paired(baseline = "rangeMapFragmented", maxNanos = 100, maxRatio = 2)
  public Shareability gmemFragmented(Fragmented s) {
    s.gmem.file.setShareability(0, GIB, s.target);
    return s.gmem.file.shareability(GIB - PAGE);
  }

  @Benchmark
  @OperationsPerInvocation(PAGES)
  public Shareability rangeMapFragmented(FragmentedRangeMap s) {
    s.runs.put(Range.closedOpen(0L, (long) PAGES), s.target);
    return s.runs.get((long) PAGES - 1);
  }

  /** 2 × 16,384 pages of a SW_PROTECTED file, all allocated, with a live host mapping over them. */
  @State(Scope.Thread)
  public static class AlternatingGmem {
    @Param({"kvm", "memfd"})
    public String backend;

    GmemFixture gmem;
    HostMapping mapping;

    @Setup(Level.Trial)
    public void open() {
      gmem = GmemFixture.open(backend, 2L * ALTERNATING * PAGE, VmType.SW_PROTECTED);
      gmem.file.allocate(0, 2L * ALTERNATING * PAGE);
      mapping = gmem.file.map();
    }

    @TearDown(Level.Trial)
    public void close() {
      mapping.close();
      gmem.close();
    }
  }

  /** The same pages of a raw guest_memfd (or memfd), all allocated, mapped once. */
  @State(Scope.Thread)
  public static class AlternatingRaw {
    @Param({"kvm", "memfd"})
    public String backend;

    RawMemory raw;
    long address;

    @Setup(Level.Trial)
    public void open() {
      raw = RawMemory.open(backend, 2L * ALTERNATING * PAGE);
      raw.allocateAll();
      address = raw.map();
    }

    @TearDown(Level.Trial)
    public void close() {
      raw.close();
    }
  }

  @Benchmark
  @OperationsPerInvocation(2 * ALTERNATING)
  @Paired(baseline = "rawMprotectAlternating", maxRatio = 4)
  public long gmemAlternatingSinglePages(AlternatingGmem s) {
    for (long i = 0; i < ALTERNATING; i++) {
      s.gmem.file.setShareability(2 * i * PAGE, PAGE, Shareability.PRIVATE);
    }
    long ranges = s.gmem.file.inode().shareabilityRanges(0, 2L * ALTERNATING).size();
    for (long i = 0; i < ALTERNATING; i++) {
      s.gmem.file.setShareability(2 * i * PAGE, PAGE, Shareability.SHARED);
    }
    return ranges;
  }

  @Benchmark
  @OperationsPerInvocation(2 * ALTERNATING)
  public int rawMprotectAlternating(AlternatingRaw s) {
    int r = 0;
    for (long i = 0; i < ALTERNATING; i++) {
      r |= RawMemory.libc().mprotect(s.address + 2 * i * PAGE, PAGE, Prot.NONE);
    }
    for (long i = 0; i < ALTERNATING; i++) {
      r |= RawMemory.libc().mprotect(s.address + 2 * i * PAGE, PAGE, Prot.READ_WRITE);
    }
    if (r != 0) {
      throw new IllegalStateException("mprotect failed");
    }
    return r;
  }
}
