package dev.gmem.examples.bench;

import static dev.gmem.examples.bench.BenchDefaults.PAGE;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Prot;
import dev.gmem.api.MapFlags;
import dev.gmem.api.spi.TemporaryMapping;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Sys;
import dev.gmem.directmap.DirectMap;
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
 * <b>NO_DIRECT_MAP</b> (gmem-direct-map), each beside the same work on a raw {@code memfd_secret(2)}
 * file, the memory a NO_DIRECT_MAP inode lives in on this kernel:
 *
 * <ul>
 *   <li>{@code firstTouch}: the first {@code putLong} to each of 2,048 absent pages of a fresh
 *       NO_DIRECT_MAP file through a fresh {@link HostMapping} — gmem's host-fault rules, the folio
 *       added to the filemap and removed from gmem's direct map (bookkeeping only: a fresh page
 *       was never mapped there, so no {@code mprotect}), then the store, whose kernel fault
 *       allocates the page and removes it from the kernel's direct map (with a TLB flush). Baseline: the same store through a {@link ByteBuffer} over a fresh raw
 *       mapping of a fresh memfd_secret file. Per page; target ratio ≤ 1.25.</li>
 *   <li>{@code writePopulate}: {@link GuestMemFile#write} of {@code sizeMiB} MiB (1 GiB by default)
 *       into a fresh NO_DIRECT_MAP|WRITE file — per page the checks and the filemap add, per chunk of
 *       64 pages one copy through the call's temporary mapping (mapped and unmapped inside the
 *       call), per run one listener call that removes the run from gmem's direct map. Baseline: one bulk copy ({@code memcpy}
 *       through a {@link ByteBuffer}) into a fresh raw mapping of a fresh memfd_secret file of the
 *       same size ({@code pwrite} is EINVAL on secret memory). Per call; target ratio ≤ 1.25.</li>
 *   <li>{@code temporaryMapping}: reading one populated 4 KiB page through a scoped temporary
 *       mapping ({@link DirectMap#mapTemporarily}: {@code mmap}, copy, {@code munmap}). Baseline:
 *       the plain 4 KiB copy from a standing mapping. For information.</li>
 * </ul>
 *
 * <p>A short family (the whole of it takes about two minutes with the default two forks): the
 * population moves 1 GiB per invocation, so it runs one warm-up and two measured single shots.
 *
 * <p>Secret memory cannot be punched, so every first-touch invocation and every population
 * iteration gets fresh files (untimed); closing the old ones frees their memory.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(value = BenchDefaults.FORKS, jvmArgsAppend = BenchDefaults.NATIVE_ACCESS)
@Warmup(iterations = 2, time = BenchDefaults.ITERATION_SECONDS)
@Measurement(iterations = 3, time = BenchDefaults.ITERATION_SECONDS)
public class DirectMapBench {
  static final int PAGES = 2048;
  static final long SIZE = PAGES * PAGE;
  static final long NDM = GmemFlags.MMAP | GmemFlags.INIT_SHARED | GmemFlags.NO_DIRECT_MAP | GmemFlags.WRITE;
  static final Sys SYS = RawMemory.SYS;

  /** A raw memfd_secret file of {@code size} bytes, mapped shared read-write. */
  static final class RawSecret implements AutoCloseable {
    final Fd fd;
    final long address;
    final long size;

    RawSecret(long size) {
      this.size = size;
      this.fd = new Fd(SYS, (int) SYS.syscall(Sys.SYS_MEMFD_SECRET, Sys.O_CLOEXEC, "memfd_secret"), "memfd_secret");
      SYS.ftruncate(fd.get(), size);
      this.address = SYS.mmap(0, size, Prot.READ_WRITE, MapFlags.SHARED, fd.get(), 0);
    }

    ByteBuffer buffer() {
      return Sys.buffer(address, (int) size);
    }

    @Override
    public void close() {
      SYS.munmap(address, size);
      fd.close();
    }
  }

  @State(Scope.Thread)
  public static class GmemTouch {
    @Param({"kvm"})
    public String backend;

    GmemFixture gmem;
    GuestMemFile file;
    HostMapping mapping;

    @Setup(Level.Trial)
    public void open() {
      gmem = GmemFixture.open(backend, PAGE);
    }

    @Setup(Level.Invocation)
    public void fresh() {
      if (file != null) {
        RawMemory.expect("pages gmem allocated in the last invocation", PAGES, file.inode().allocatedPages());
        mapping.close();
        file.close();
      }
      file = gmem.vm.createGuestMemFile(SIZE, NDM);
      mapping = file.map();
    }

    @TearDown(Level.Trial)
    public void close() {
      if (file != null) {
        mapping.close();
        file.close();
      }
      gmem.close();
    }
  }

  @State(Scope.Thread)
  public static class RawTouch {
    RawSecret raw;
    ByteBuffer buffer;

    @Setup(Level.Invocation)
    public void fresh() {
      if (raw != null) {
        raw.close();
      }
      raw = new RawSecret(SIZE);
      buffer = raw.buffer();
    }

    @TearDown(Level.Trial)
    public void close() {
      if (raw != null) {
        raw.close();
      }
    }
  }

  @Benchmark
  @OperationsPerInvocation(PAGES)
  @Paired(baseline = "rawSecretFirstTouch", maxRatio = 1.25)
  public void gmemNoDirectMapFirstTouch(GmemTouch s) {
    HostMapping m = s.mapping;
    for (long off = 0; off < SIZE; off += PAGE) {
      m.putLong(off, off);
    }
  }

  @Benchmark
  @OperationsPerInvocation(PAGES)
  public void rawSecretFirstTouch(RawTouch s) {
    ByteBuffer b = s.buffer;
    for (int off = 0; off < SIZE; off += PAGE) {
      b.putLong(off, off);
    }
  }

  /** The source of a population: {@code sizeMiB} MiB of a pattern, off the heap. */
  @State(Scope.Thread)
  public static class Source {
    @Param({"1024"})
    public int sizeMiB;

    ByteBuffer data;

    @Setup(Level.Trial)
    public void fill() {
      data = ByteBuffer.allocateDirect(sizeMiB << 20);
      for (int i = 0; i < data.capacity(); i += 8) {
        data.putLong(i, 0x5a5a5a5a00000000L | i);
      }
    }

    long size() {
      return (long) sizeMiB << 20;
    }
  }

  @State(Scope.Thread)
  public static class GmemPopulate {
    @Param({"kvm"})
    public String backend;

    GmemFixture gmem;
    GuestMemFile file;

    @Setup(Level.Trial)
    public void open() {
      gmem = GmemFixture.open(backend, PAGE);
    }

    @Setup(Level.Iteration)
    public void fresh(Source src) {
      if (file != null) {
        file.close();
      }
      file = gmem.vm.createGuestMemFile(src.size(), NDM);
    }

    @TearDown(Level.Trial)
    public void close() {
      if (file != null) {
        file.close();
      }
      gmem.close();
    }
  }

  @State(Scope.Thread)
  public static class RawPopulate {
    RawSecret raw;

    @Setup(Level.Iteration)
    public void fresh(Source src) {
      if (raw != null) {
        raw.close();
      }
      raw = new RawSecret(src.size());
    }

    @TearDown(Level.Trial)
    public void close() {
      if (raw != null) {
        raw.close();
      }
    }
  }

  @Benchmark
  @BenchmarkMode(Mode.SingleShotTime)
  @OutputTimeUnit(TimeUnit.MILLISECONDS)
  @Warmup(iterations = 1)
  @Measurement(iterations = 2)
  @Paired(baseline = "rawSecretMemcpy", maxRatio = 1.25)
  public long gmemWritePopulate(GmemPopulate s, Source src) {
    return s.file.write(0, src.data.duplicate());
  }

  @Benchmark
  @BenchmarkMode(Mode.SingleShotTime)
  @OutputTimeUnit(TimeUnit.MILLISECONDS)
  @Warmup(iterations = 1)
  @Measurement(iterations = 2)
  public ByteBuffer rawSecretMemcpy(RawPopulate s, Source src) {
    return s.raw.buffer().put(src.data.duplicate());
  }

  /** A populated NO_DIRECT_MAP file of 256 pages and a 4 KiB buffer. */
  @State(Scope.Thread)
  public static class GmemTemporary {
    @Param({"kvm"})
    public String backend;

    GmemFixture gmem;
    GuestMemFile file;
    DirectMap dm;
    final ByteBuffer buf = ByteBuffer.allocateDirect((int) PAGE);
    long next;

    @Setup(Level.Trial)
    public void open() {
      gmem = GmemFixture.open(backend, PAGE);
      dm = gmem.runtime.feature(DirectMap.class).orElseThrow();
      file = gmem.vm.createGuestMemFile(256 * PAGE, NDM);
      file.write(0, ByteBuffer.allocateDirect((int) (256 * PAGE)));
    }

    @TearDown(Level.Trial)
    public void close() {
      file.close();
      gmem.close();
    }
  }

  @State(Scope.Thread)
  public static class PlainCopy {
    RawSecret raw;
    ByteBuffer view;
    final ByteBuffer buf = ByteBuffer.allocateDirect((int) PAGE);
    int next;

    @Setup(Level.Trial)
    public void open() {
      raw = new RawSecret(256 * PAGE);
      view = raw.buffer();
      for (int i = 0; i < 256; i++) {
        view.put(i * (int) PAGE, (byte) 1);
      }
    }

    @TearDown(Level.Trial)
    public void close() {
      raw.close();
    }
  }

  @Benchmark
  @Paired(baseline = "plainCopy4k")
  public ByteBuffer gmemTemporaryMapping4k(GmemTemporary s) {
    long page = s.next++ & 255;
    ByteBuffer b = s.buf;
    b.clear();
    try (TemporaryMapping t = s.dm.mapTemporarily(s.file.inode().ino(), page, 1)) {
      t.read(0, b);
    }
    return b;
  }

  @Benchmark
  public ByteBuffer plainCopy4k(PlainCopy s) {
    int page = s.next++ & 255;
    ByteBuffer b = s.buf;
    b.clear();
    return b.put(0, s.view, page * (int) PAGE, (int) PAGE);
  }
}
