package dev.gmem.examples.bench;

import static dev.gmem.examples.bench.BenchDefaults.PAGE;

import dev.gmem.api.Folio;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.GuestMemInode;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Prot;
import dev.gmem.api.Shareability;
import dev.gmem.api.VmType;
import dev.gmem.core.host.HugePages;
import dev.gmem.core.sys.Sys;
import dev.gmem.core.sys.libc.LibC;
import java.nio.ByteBuffer;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.AuxCounters;
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
 * <b>HugeTLB folios</b> (gmem-alloc-hugetlb) on real pool pages, each beside what the same work
 * costs without gmem. Every trial reserves the pages it needs ({@link HugePages}: grows
 * {@code nr_hugepages}) and gives the pool back exactly as found in its teardown, or in a shutdown
 * hook when the fork ends early. Needs root. Where the kernel cannot provide a 1 GiB page the
 * 1 GiB benchmarks fail their setup with that reason and the 2 MiB one still runs.
 *
 * <p>The 1 GiB benchmarks share one setup: a 1 GiB file of a SW_PROTECTED VM with 1 GiB pages
 * ({@code MMAP | hugePageSize(30)}, private), bound by a memslot, its one huge page allocated as a
 * 1 GiB folio by a private software-vCPU write, and a host mapping of the file (covered, as every
 * host mapping of private hugetlb memory is).
 *
 * <ul>
 *   <li>{@code gmemSplit1GiB}: the whole gigabyte converted to shared in one call
 *       ({@code setShareability(0, 1 GiB, SHARED)}), which splits the 1 GiB folio down to 262,144
 *       4 KiB folios (1 GiB → 512 × 2 MiB → 512 × 512 × 4 KiB: every piece holds shared pages) —
 *       validation, store update, split preparation (allocator metadata), the filemap and tracker
 *       commit, clearing the prepared state, and the host mapping's remap of the now-shared
 *       gigabyte. {@code gmemMerge1GiB}: the reverse ({@code setShareability(0, 1 GiB, PRIVATE)}),
 *       which merges the 262,144 folios back into one 1 GiB folio in one step, after zapping the
 *       host mapping and the reference check. Each is its own benchmark (an untimed per-invocation
 *       setup brings the folio into the other state and checks the previous result).
 *       Target: ≤ 5 ms each.
 *       <br>The kernel has no split call to compare with (the hugetlb page itself stays whole; the
 *       split is gmem's folio structure), so the baseline is the floor of the same host-side change
 *       for any user-space enforcement: one {@code mprotect} of the whole 1 GiB of a raw
 *       {@code MFD_HUGETLB | MFD_HUGE_1GB} memfd mapping (page faulted in), alternately
 *       {@code PROT_NONE} and {@code PROT_READ|PROT_WRITE} — gmem makes one {@code mmap} of the
 *       same size per conversion. The ratio is information: the target is absolute.
 *       <br>Tracking cost: the trial setup splits once, and prints gmem's bytes for the split
 *       gigabyte ({@link GuestMemInode#trackingBytes()}: filemap plus the allocator's split
 *       tracker) per 4 KiB page (target ≤ 16); the split and merge benchmarks also report it as the
 *       secondary result {@code trackingBytesPerPage}, an {@code @AuxCounters} gauge that the ratio
 *       table prints per iteration (JMH's own summary adds EVENTS counters up over iterations).
 *   <li>{@code gmemConvert4kIn1GiB}: one 4 KiB page in the middle of the 1 GiB folio converted
 *       to shared and back, per conversion (splits 1 GiB → 511 × 2 MiB + 512 × 4 KiB, then merges
 *       back to 1 GiB). Baseline: {@code mprotect(PROT_NONE)} and back of one 4 KiB page of a plain
 *       (4 KiB-page) memfd mapping, per call. A hugetlb mapping cannot be protected below its page
 *       size ({@code mprotect} of 4 KiB of it is EINVAL), which is why gmem covers a mixed huge page
 *       whole; the plain-memfd call is the smallest protection change the kernel offers at all.
 *       Information only.
 *   <li>{@code gmemFirstTouch2MiB}: the first {@link HostMapping#putLong} to each 2 MiB block of
 *       a fresh mapping of a 128 MiB {@code INIT_SHARED} file with 2 MiB pages, per block: gmem's
 *       host fault (shareability, the allocator's {@code allocFolio}: the pool reservation renewed
 *       with an {@code mmap} and {@code munmap}, then {@code fallocate}, which takes and zeroes the
 *       pool page; the block is handed out as 512 shared 4 KiB folios, since a huge page holding
 *       shared pages is split in gmem's bookkeeping), then the store through the inode's guest
 *       view — where {@code HostMapping}'s accessors write for every allocator — which maps the
 *       page with one 2 MiB fault. Baseline: {@code ByteBuffer.putLong} to each 2 MiB block of a raw
 *       {@code MFD_HUGETLB | MFD_HUGE_2MB} memfd mapping — one kernel fault that takes, zeroes and
 *       maps the page. Target: ratio ≤ 1.25. The untimed per-invocation setup checks that every
 *       block was really taken from the pool ({@code free_hugepages}), punches the file (pages
 *       back to the pool, checked) and maps it afresh.
 * </ul>
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(value = BenchDefaults.FORKS, jvmArgsAppend = BenchDefaults.NATIVE_ACCESS)
@Warmup(iterations = BenchDefaults.WARMUP_ITERATIONS, time = BenchDefaults.ITERATION_SECONDS)
@Measurement(iterations = BenchDefaults.MEASUREMENT_ITERATIONS, time = BenchDefaults.ITERATION_SECONDS)
public class HugetlbBench {
  static final long GIB = 1L << 30;
  static final long MIB2 = 2L << 20;
  /** 4 KiB pages in a gigabyte. */
  static final long GIB_PAGES = GIB / PAGE;
  /** 2 MiB pieces in a gigabyte. */
  static final long PIECES = GIB / MIB2;
  /** The page {@code gmemConvert4kIn1GiB} converts: page 7 of the 300th 2 MiB piece. */
  static final long ONE_PAGE = 300 * MIB2 + 7 * PAGE;
  /** 2 MiB blocks {@code gmemFirstTouch2MiB} touches per invocation. */
  static final int BLOCKS = 64;
  static final long TOUCH_SIZE = BLOCKS * MIB2;

  // ---------------------------------------------------------------- 1 GiB: split, merge, one page

  /**
   * A 1 GiB hugetlb file of a SW_PROTECTED VM, private, its huge page allocated as one 1 GiB
   * folio by a private software-vCPU write, and a host mapping of it.
   */
  @State(Scope.Thread)
  public static class Gigabyte {
    @Param({"kvm", "memfd"})
    public String backend;

    HugePages pool;
    GmemFixture gmem;
    GuestMemFile file;
    GuestMemInode inode;
    HostMapping mapping;
    /** gmem's bytes per 4 KiB page of the gigabyte split to 4 KiB folios (filemap + allocator tracker). */
    double trackingBytesPerPage;

    @Setup(Level.Trial)
    public void open() {
      pool = HugePages.grow(GIB, 1);
      try {
        gmem = GmemFixture.open(backend, GIB, VmType.SW_PROTECTED, GmemFlags.MMAP | GmemFlags.hugePageSize(30));
        file = gmem.file;
        inode = file.inode();
        long free = pool.free();
        gmem.vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, GIB, file, 0);
        gmem.vm.softwareVcpu().writeLong(0, 1, true);
        RawMemory.expect("1 GiB pool pages taken by the private fault", 1, free - pool.free());
        mapping = file.map();
        expectWhole();

        // Tracking cost of the split gigabyte, measured once on the state the split benchmark makes.
        long whole = inode.trackingBytes();
        file.setShareability(0, GIB, Shareability.SHARED);
        expectSplit();
        long split = inode.trackingBytes();
        trackingBytesPerPage = (double) split / GIB_PAGES;
        file.setShareability(0, GIB, Shareability.PRIVATE);
        expectWhole();
        System.out.printf(Locale.ROOT, "%nHugetlbBench: a 1 GiB folio split to 262,144 4 KiB folios is tracked in %d bytes "
            + "(filemap and allocator) = %.4f bytes per 4 KiB page (target <= 16); whole: %d bytes%n",
            split, trackingBytesPerPage, whole);
      } catch (RuntimeException e) {
        close();
        throw e;
      }
    }

    void expectWhole() {
      RawMemory.expect("folios in the gigabyte (whole)", 1, inode.folioCount());
      RawMemory.expect("order of its folio", Folio.PUD_ORDER, inode.orderAt(GIB_PAGES - 1));
    }

    void expectSplit() {
      RawMemory.expect("folios in the gigabyte (split to 4 KiB)", GIB_PAGES, inode.folioCount());
      RawMemory.expect("order of its last folio", 0, inode.orderAt(GIB_PAGES - 1));
    }

    @TearDown(Level.Trial)
    public void close() {
      try {
        if (mapping != null) {
          mapping.close();
        }
        if (gmem != null) {
          gmem.close();
        }
      } finally {
        if (pool != null) {
          pool.close();
        }
      }
    }
  }

  /** The gigabyte whole (one 1 GiB folio) before each invocation; the previous split checked. */
  public static class WholeGigabyte extends Gigabyte {
    boolean invoked;

    @Setup(Level.Invocation)
    public void merged() {
      if (invoked) {
        expectSplit();
        file.setShareability(0, GIB, Shareability.PRIVATE);
      }
      invoked = true;
      expectWhole();
    }
  }

  /** The gigabyte split to 4 KiB folios before each invocation; the previous merge checked. */
  public static class SplitGigabyte extends Gigabyte {
    @Setup(Level.Invocation)
    public void split() {
      expectWhole();
      file.setShareability(0, GIB, Shareability.SHARED);
      expectSplit();
    }
  }

  /** The gigabyte, checked at each iteration's ends: one page's round trip leaves it one folio. */
  public static class OnePageGigabyte extends Gigabyte {
    @Setup(Level.Iteration)
    public void check() {
      expectWhole();
      file.setShareability(ONE_PAGE, PAGE, Shareability.SHARED);
      RawMemory.expect("folios with one shared page (511 x 2 MiB + 512 x 4 KiB)", PIECES - 1 + MIB2 / PAGE, inode.folioCount());
      RawMemory.expect("order of the shared page's folio", 0, inode.orderAt(ONE_PAGE / PAGE));
      file.setShareability(ONE_PAGE, PAGE, Shareability.PRIVATE);
      expectWhole();
    }

    @TearDown(Level.Iteration)
    public void checkAfter() {
      expectWhole();
    }
  }

  /** Secondary result of the split and merge benchmarks. */
  @State(Scope.Thread)
  @AuxCounters(AuxCounters.Type.EVENTS)
  public static class Tracking {
    /** gmem's bytes per 4 KiB page of a 1 GiB folio split to 4 KiB: (filemap + allocator tracker) / 262,144. */
    public double trackingBytesPerPage;
  }

  @Benchmark
  @Paired(baseline = "rawMprotect1GiB", maxNanos = 5_000_000)
  public long gmemSplit1GiB(WholeGigabyte s, Tracking t) {
    s.file.setShareability(0, GIB, Shareability.SHARED);
    t.trackingBytesPerPage = s.trackingBytesPerPage;
    return s.inode.folioCount();
  }

  @Benchmark
  @Paired(baseline = "rawMprotect1GiB", maxNanos = 5_000_000)
  public long gmemMerge1GiB(SplitGigabyte s, Tracking t) {
    s.file.setShareability(0, GIB, Shareability.PRIVATE);
    t.trackingBytesPerPage = s.trackingBytesPerPage;
    return s.inode.folioCount();
  }

  @Benchmark
  @OperationsPerInvocation(2)
  @Paired(baseline = "rawMprotect4k")
  public long gmemConvert4kIn1GiB(OnePageGigabyte s) {
    s.file.setShareability(ONE_PAGE, PAGE, Shareability.SHARED);
    s.file.setShareability(ONE_PAGE, PAGE, Shareability.PRIVATE);
    return s.inode.folioCount();
  }

  /** A raw 1 GiB hugetlbfs memfd, mapped shared, its page faulted in. */
  @State(Scope.Thread)
  public static class RawGigabyte {
    HugePages pool;
    RawMemory raw;
    LibC libc;
    long address;
    long calls;
    /** OR of the mprotect return codes of the iteration: 0 when all succeeded. */
    int failed;

    @Setup(Level.Trial)
    public void open() {
      pool = HugePages.grow(GIB, 1);
      try {
        raw = RawMemory.openHugetlb(30, GIB);
        long free = pool.free();
        address = raw.map();
        Sys.buffer(address, 8).putLong(0, 1);
        RawMemory.expect("1 GiB pool pages taken by the fault", 1, free - pool.free());
        libc = RawMemory.libc();
      } catch (RuntimeException e) {
        close();
        throw e;
      }
    }

    @TearDown(Level.Iteration)
    public void check() {
      RawMemory.expect("mprotect failures in the iteration", 0, failed);
    }

    @TearDown(Level.Trial)
    public void close() {
      try {
        if (raw != null) {
          raw.close();
        }
      } finally {
        if (pool != null) {
          pool.close();
        }
      }
    }
  }

  @Benchmark
  public int rawMprotect1GiB(RawGigabyte s) {
    int r = s.libc.mprotect(s.address, GIB, (s.calls++ & 1) == 0 ? Prot.NONE : Prot.READ_WRITE);
    s.failed |= r;
    return r;
  }

  /** A plain memfd (4 KiB pages) of 2 MiB, mapped shared, every page touched. */
  @State(Scope.Thread)
  public static class RawSmallPages {
    RawMemory raw;
    LibC libc;
    long address;
    int failed;

    @Setup(Level.Trial)
    public void open() {
      raw = RawMemory.open("memfd", MIB2);
      address = raw.map();
      ByteBuffer b = Sys.buffer(address, (int) MIB2);
      for (int off = 0; off < MIB2; off += (int) PAGE) {
        b.putLong(off, off);
      }
      libc = RawMemory.libc();
    }

    @TearDown(Level.Iteration)
    public void check() {
      RawMemory.expect("mprotect failures in the iteration", 0, failed);
    }

    @TearDown(Level.Trial)
    public void close() {
      raw.close();
    }
  }

  @Benchmark
  @OperationsPerInvocation(2)
  public int rawMprotect4k(RawSmallPages s) {
    long page = s.address + 7 * PAGE;
    int r = s.libc.mprotect(page, PAGE, Prot.NONE) | s.libc.mprotect(page, PAGE, Prot.READ_WRITE);
    s.failed |= r;
    return r;
  }

  // ---------------------------------------------------------------- 2 MiB first touch

  /** A 128 MiB INIT_SHARED file with 2 MiB pages; a fresh mapping of it, all pages absent, per invocation. */
  @State(Scope.Thread)
  public static class GmemTouch {
    @Param({"kvm", "memfd"})
    public String backend;

    HugePages pool;
    GmemFixture gmem;
    HostMapping mapping;
    /** Free pool pages with the file reserved and empty. */
    long freeWhenEmpty;

    @Setup(Level.Trial)
    public void open() {
      pool = HugePages.grow(MIB2, BLOCKS);
      try {
        gmem = GmemFixture.open(backend, TOUCH_SIZE, VmType.DEFAULT, GmemFlags.MMAP | GmemFlags.INIT_SHARED | GmemFlags.hugePageSize(21));
        freeWhenEmpty = pool.free();
      } catch (RuntimeException e) {
        close();
        throw e;
      }
    }

    @Setup(Level.Invocation)
    public void freshMapping() {
      if (mapping != null) {
        RawMemory.expect("4 KiB pages gmem allocated in the last invocation", TOUCH_SIZE / PAGE, gmem.file.inode().allocatedPages());
        RawMemory.expect("2 MiB pool pages taken in the last invocation", BLOCKS, freeWhenEmpty - pool.free());
        mapping.close();
      }
      gmem.file.punchHole(0, TOUCH_SIZE);
      RawMemory.expect("2 MiB pool pages taken after the punch", 0, freeWhenEmpty - pool.free());
      mapping = gmem.file.map();
    }

    @TearDown(Level.Trial)
    public void close() {
      try {
        if (mapping != null) {
          mapping.close();
        }
        if (gmem != null) {
          gmem.close();
        }
      } finally {
        if (pool != null) {
          pool.close();
        }
      }
    }
  }

  /** A raw 128 MiB hugetlbfs memfd with 2 MiB pages; a fresh raw mapping of it, all pages absent, per invocation. */
  @State(Scope.Thread)
  public static class RawTouch {
    HugePages pool;
    RawMemory raw;
    long address;
    ByteBuffer buffer;
    long freeWhenEmpty;

    @Setup(Level.Trial)
    public void open() {
      pool = HugePages.grow(MIB2, BLOCKS);
      try {
        raw = RawMemory.openHugetlb(21, TOUCH_SIZE);
        freeWhenEmpty = pool.free();
      } catch (RuntimeException e) {
        close();
        throw e;
      }
    }

    @Setup(Level.Invocation)
    public void freshMapping() {
      if (address != 0) {
        RawMemory.expect("2 MiB pool pages taken in the last invocation", BLOCKS, freeWhenEmpty - pool.free());
        buffer = null;
        raw.unmap(address);
        address = 0;
      }
      raw.punchAll();
      RawMemory.expect("2 MiB pool pages taken after the punch", 0, freeWhenEmpty - pool.free());
      address = raw.map();
      buffer = Sys.buffer(address, (int) TOUCH_SIZE);
    }

    @TearDown(Level.Trial)
    public void close() {
      try {
        buffer = null;
        if (raw != null) {
          raw.close();
        }
      } finally {
        if (pool != null) {
          pool.close();
        }
      }
    }
  }

  @Benchmark
  @OperationsPerInvocation(BLOCKS)
  @Paired(baseline = "rawFirstTouch2MiB", maxRatio = 1.25)
  public void gmemFirstTouch2MiB(GmemTouch s) {
    HostMapping m = s.mapping;
    for (long off = 0; off < TOUCH_SIZE; off += MIB2) {
      m.putLong(off, off);
    }
  }

  @Benchmark
  @OperationsPerInvocation(BLOCKS)
  public void rawFirstTouch2MiB(RawTouch s) {
    ByteBuffer b = s.buffer;
    for (int off = 0; off < TOUCH_SIZE; off += (int) MIB2) {
      b.putLong(off, off);
    }
  }
}
