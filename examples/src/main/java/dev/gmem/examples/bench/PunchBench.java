package dev.gmem.examples.bench;

import static dev.gmem.examples.bench.BenchDefaults.PAGE;

import dev.gmem.api.Fallocate;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.core.sys.Sys;
import dev.gmem.core.sys.libc.LibC;
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
 * <b>4 KiB punch</b>: freeing one allocated page with {@code fallocate(KEEP_SIZE|PUNCH_HOLE, off, 4096)}.
 *
 * <p>gmem: {@link GuestMemFile#punchHole} — the VFS/guest_memfd argument checks, the invalidate
 * lock (exclusive), the real {@code fallocate} on the backing file, removal of the folio from the
 * filemap, the arch's {@code invalidate} and the filemap listeners.
 *
 * <p>Baseline: {@code fallocate(2)} called straight through the JNR binding ({@link LibC}) on a raw
 * guest_memfd ({@code KVM_CREATE_GUEST_MEMFD}, {@code MMAP|INIT_SHARED}) or memfd. It is the floor:
 * the kernel work (free the page; zap its PTE; on guest_memfd, invalidate KVM's mappings) is the
 * same, and the JNR call (~15 ns) is the cheapest way Java reaches the syscall — gmem makes the same
 * call. Return codes are OR-ed into the state and checked in the next setup, so a failing punch
 * fails the benchmark instead of measuring an error path (and the calls are not dead code).
 *
 * <p>Each invocation punches the 512 pages of a 2 MiB file one by one
 * ({@code @OperationsPerInvocation(PAGES)}, score per punch). The untimed per-invocation setup
 * allocates every page again, so each punch frees a real page. {@code page} selects how:
 * <ul>
 *   <li>{@code mapped}: one {@code long} written to each page through a mapping that stays in place
 *       (gmem through its {@code HostMapping}, so its filemap holds the folio). The punch also zaps
 *       the PTE and flushes TLBs — the realistic case, but TLB-shootdown IPIs make it sensitive to
 *       what the other CPU runs. Residency is checked with {@code mincore}; on the gmem side
 *       through a short-lived second mapping, so that each side punches a file mapped once (a
 *       raw view handed out stays mapped, and a second mapping costs each punch ~0.5 µs).</li>
 *   <li>{@code unmapped}: {@code fallocate(KEEP_SIZE)} over the file (gmem:
 *       {@link GuestMemFile#allocate}); no PTE exists, so the punch only frees the page and the
 *       measurement is steadier.</li>
 * </ul>
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(value = BenchDefaults.FORKS, jvmArgsAppend = BenchDefaults.NATIVE_ACCESS)
@Warmup(iterations = BenchDefaults.WARMUP_ITERATIONS, time = BenchDefaults.ITERATION_SECONDS)
@Measurement(iterations = BenchDefaults.MEASUREMENT_ITERATIONS, time = BenchDefaults.ITERATION_SECONDS)
public class PunchBench {
  static final int PAGES = 512;
  static final long SIZE = PAGES * PAGE;
  private static final int PUNCH = Fallocate.KEEP_SIZE | Fallocate.PUNCH_HOLE;

  /** A gmem file with a host mapping; every page allocated before each invocation. */
  @State(Scope.Thread)
  public static class GmemSide {
    @Param({"kvm", "memfd"})
    public String backend;

    @Param({"mapped", "unmapped"})
    public String page;

    GmemFixture gmem;
    GuestMemFile file;
    HostMapping mapping;

    @Setup(Level.Trial)
    public void open() {
      gmem = GmemFixture.open(backend, SIZE);
      file = gmem.file;
      mapping = file.map();
    }

    @Setup(Level.Invocation)
    public void populate() {
      RawMemory.expect("pages gmem holds before populating", 0, file.inode().allocatedPages());
      if (page.equals("mapped")) {
        RawMemory.expect("pages resident before populating", 0, RawMemory.residentPages(file, SIZE));
        for (long off = 0; off < SIZE; off += PAGE) {
          mapping.putLong(off, off + 1);
        }
        RawMemory.expect("pages resident after populating", PAGES, RawMemory.residentPages(file, SIZE));
      } else {
        file.allocate(0, SIZE);
      }
      RawMemory.expect("pages gmem holds after populating", PAGES, file.inode().allocatedPages());
    }

    @TearDown(Level.Trial)
    public void close() {
      mapping.close();
      gmem.close();
    }
  }

  /** A raw guest_memfd or memfd with a raw mapping; every page allocated before each invocation. */
  @State(Scope.Thread)
  public static class RawSide {
    @Param({"kvm", "memfd"})
    public String backend;

    @Param({"mapped", "unmapped"})
    public String page;

    RawMemory raw;
    LibC libc;
    int fd;
    long address;
    ByteBuffer buffer;
    /** OR of every fallocate return code of the last invocation: 0 when all punches succeeded. */
    int failed;

    @Setup(Level.Trial)
    public void open() {
      raw = RawMemory.open(backend, SIZE);
      libc = RawMemory.libc();
      fd = raw.fd;
      address = raw.map();
      buffer = Sys.buffer(address, (int) SIZE);
    }

    @Setup(Level.Invocation)
    public void populate() {
      RawMemory.expect("fallocate(PUNCH_HOLE) failures in the last invocation", 0, failed);
      if (page.equals("mapped")) {
        RawMemory.expect("pages resident before populating", 0, RawMemory.residentPages(address, SIZE));
        for (int off = 0; off < SIZE; off += PAGE) {
          buffer.putLong(off, off + 1);
        }
        RawMemory.expect("pages resident after populating", PAGES, RawMemory.residentPages(address, SIZE));
      } else {
        raw.allocateAll();
      }
    }

    @TearDown(Level.Trial)
    public void close() {
      buffer = null;
      raw.close();
    }
  }

  @Benchmark
  @OperationsPerInvocation(PAGES)
  @Paired(baseline = "rawPunch4k", maxRatio = 1.25)
  public void gmemPunch4k(GmemSide s) {
    GuestMemFile f = s.file;
    for (long off = 0; off < SIZE; off += PAGE) {
      f.punchHole(off, PAGE);
    }
  }

  @Benchmark
  @OperationsPerInvocation(PAGES)
  public void rawPunch4k(RawSide s) {
    LibC c = s.libc;
    int fd = s.fd;
    int failed = 0;
    for (long off = 0; off < SIZE; off += PAGE) {
      failed |= c.fallocate(fd, PUNCH, off, PAGE);
    }
    s.failed = failed;
  }
}
