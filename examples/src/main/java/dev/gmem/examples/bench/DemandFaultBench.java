package dev.gmem.examples.bench;

import dev.gmem.api.Fallocate;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Prot;
import dev.gmem.api.MapFlags;
import dev.gmem.core.sys.Sys;
import dev.gmem.userfault.FaultStats;
import dev.gmem.userfault.uffd.Native;
import dev.gmem.userfault.uffd.UffdHandler;
import dev.gmem.userfault.uffd.UffdPages;
import dev.gmem.userfault.uffd.Userfaultfd;
import dev.gmem.userfault.uffd.libc.UffdLibC;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import jnr.ffi.Pointer;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * <b>Demand fault from a warm local snapshot</b> (issue 13), one faulting thread: a MISSING fault on
 * a registered shmem mapping, served from a snapshot file whose pages are in the page cache.
 *
 * <p>gmem: gmem-userfault's {@link UffdHandler} (its own thread polling the userfaultfd and its stop
 * eventfd) answering each fault through {@link UffdPages#mapped}: UFFDIO_COPY straight from an mmap
 * of the snapshot file, with the handler's bookkeeping (pending faults, latency histograms, a JFR
 * event when enabled). The memory is a gmem file's host mapping (memfd backend).
 *
 * <p>Baseline: a raw userfaultfd MISSING + COPY handler through JNR syscalls — poll, read of the
 * {@code uffd_msg}, UFFDIO_COPY straight from an mmap of the same snapshot file (no intermediate
 * copy) — over a raw memfd mapping of the same size.
 *
 * <p>Both sides fault the same way, from a thread in native code: {@code write(pipe, page, 4096)}
 * (the kernel's copy takes the fault and waits for the handler) and a {@code read} draining the
 * pipe. Each invocation faults the 256 pages once; the untimed setup punches them out again.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(value = BenchDefaults.FORKS, jvmArgsAppend = BenchDefaults.NATIVE_ACCESS)
@Warmup(iterations = BenchDefaults.WARMUP_ITERATIONS, time = BenchDefaults.ITERATION_SECONDS)
@Measurement(iterations = BenchDefaults.MEASUREMENT_ITERATIONS, time = BenchDefaults.ITERATION_SECONDS)
public class DemandFaultBench {
  static final int PAGES = 256;
  static final long PAGE = 4096;
  static final long SIZE = PAGES * PAGE;
  private static final int PUNCH = Fallocate.KEEP_SIZE | Fallocate.PUNCH_HOLE;

  /** A warm snapshot file of SIZE bytes with non-zero content. */
  static Path snapshot() throws IOException {
    Path p = Files.createTempFile("gmem-demand-fault", ".img");
    ByteBuffer b = ByteBuffer.allocate((int) SIZE);
    for (int i = 0; i < SIZE; i += 8) {
      b.putLong(i, i + 1);
    }
    Files.write(p, b.array());
    Files.readAllBytes(p); // warm
    p.toFile().deleteOnExit();
    return p;
  }

  /** A read-only mapping of a fresh warm snapshot. */
  static long mapSnapshot() throws IOException {
    Path snap = snapshot();
    int fd = RawMemory.SYS.open(snap.toString(), Sys.O_RDONLY);
    try {
      return RawMemory.SYS.mmap(0, SIZE, Prot.READ, MapFlags.SHARED, fd, 0);
    } finally {
      RawMemory.SYS.closeQuietly(fd);
    }
  }

  /** The pipe the faulting thread copies each page into, and a buffer to drain it. */
  static final class Pipe {
    final int[] fds = new int[2];
    final Pointer drain = Native.allocate((int) PAGE);

    Pipe() {
      RawMemory.expect("pipe()", 0, Native.libc().pipe(fds));
    }

    /** One demand fault: the kernel copies from the missing page (faulting), then we drain. */
    long fault(long address) {
      UffdLibC c = Native.libc();
      long n = c.write(fds[1], address, PAGE);
      return n + c.read(fds[0], drain.address(), PAGE);
    }

    void close() {
      Native.libc().close(fds[0]);
      Native.libc().close(fds[1]);
    }
  }

  @State(Scope.Thread)
  public static class GmemSide {
    GmemRuntime rt;
    GuestMemFile file;
    HostMapping mapping;
    UffdHandler handler;
    long snapshot;
    Pipe pipe;
    long address;
    long copied;

    @Setup(Level.Trial)
    public void open() throws IOException {
      rt = GmemRuntime.builder().property("gmem.backend", "memfd").property("gmem.feature.userfault", "false").build();
      file = rt.createVm(dev.gmem.api.VmType.DEFAULT).createGuestMemFile(SIZE, dev.gmem.api.GmemFlags.MMAP | dev.gmem.api.GmemFlags.INIT_SHARED);
      mapping = file.map();
      address = mapping.address();
      snapshot = mapSnapshot();
      handler = UffdHandler.start(new FaultStats(), Duration.ofSeconds(30), "gmem-uffd-bench");
      handler.register(address, SIZE, Userfaultfd.MODE_MISSING, new UffdPages() {
        @Override
        public long mapped(UffdHandler.Region r, long pageAddress) {
          return snapshot + (pageAddress - r.start());
        }

        @Override
        public Answer missing(UffdHandler.Region r, long pageAddress, boolean write, ByteBuffer page) {
          throw new IllegalStateException("every page is mapped");
        }
      });
      pipe = new Pipe();
    }

    @Setup(Level.Invocation)
    public void missing() {
      RawMemory.expect("bytes moved in the last invocation", 0, copied == 0 ? 0 : copied - 2 * SIZE);
      copied = 0;
      file.punchHole(0, SIZE);
    }

    @TearDown(Level.Trial)
    public void close() throws IOException {
      pipe.close();
      handler.close();
      RawMemory.SYS.munmap(snapshot, SIZE);
      mapping.close();
      rt.close();
    }
  }

  @State(Scope.Thread)
  public static class RawSide {
    RawMemory raw;
    long address;
    int uffd;
    long source;
    Pipe pipe;
    Thread handler;
    volatile boolean running = true;
    long copied;

    @Setup(Level.Trial)
    public void open() throws IOException {
      raw = RawMemory.open("memfd", SIZE);
      address = raw.map();
      source = mapSnapshot();
      uffd = rawMissingUffd(address, SIZE);
      handler = new Thread(this::serve, "raw-uffd-bench");
      handler.setDaemon(true);
      handler.start();
      pipe = new Pipe();
    }

    /** The raw handler: poll, read one message at a time, UFFDIO_COPY from the snapshot's mapping. */
    private void serve() {
      UffdLibC c = Native.libc();
      Pointer fds = Native.allocate(8);
      fds.putInt(0, uffd);
      fds.putShort(4, (short) 1);
      Pointer msg = Native.allocate(32);
      Pointer copy = Native.allocate(40);
      while (running) {
        if (c.poll(fds, 1, 100) <= 0) {
          continue;
        }
        if (c.read(uffd, msg.address(), 32) != 32) {
          continue;
        }
        long addr = msg.getLong(16) & ~(PAGE - 1);
        copy.putLong(0, addr);
        copy.putLong(8, source + (addr - address));
        copy.putLong(16, PAGE);
        copy.putLong(24, 0);
        c.ioctl(uffd, Userfaultfd.UFFDIO_COPY, copy);
      }
    }

    @Setup(Level.Invocation)
    public void missing() {
      RawMemory.expect("bytes moved in the last invocation", 0, copied == 0 ? 0 : copied - 2 * SIZE);
      copied = 0;
      RawMemory.SYS.fallocate(raw.fd, PUNCH, 0, SIZE);
    }

    @TearDown(Level.Trial)
    public void close() throws InterruptedException {
      running = false;
      handler.join();
      pipe.close();
      Native.libc().close(uffd);
      RawMemory.SYS.munmap(source, SIZE);
      raw.close();
    }
  }

  @Benchmark
  @OperationsPerInvocation(PAGES)
  @Paired(baseline = "rawUffdDemandFault", maxRatio = 1.25)
  public long gmemDemandFault(GmemSide s) {
    long n = 0;
    for (long off = 0; off < SIZE; off += PAGE) {
      n += s.pipe.fault(s.address + off);
    }
    s.copied = n;
    return n;
  }

  @Benchmark
  @OperationsPerInvocation(PAGES)
  public long rawUffdDemandFault(RawSide s) {
    long n = 0;
    for (long off = 0; off < SIZE; off += PAGE) {
      n += s.pipe.fault(s.address + off);
    }
    s.copied = n;
    return n;
  }

  /**
   * The raw baselines' userfaultfd: UFFDIO_API with MISSING_SHMEM, then {@code [address, +size)}
   * registered for MISSING faults; returns the fd.
   */
  static int rawMissingUffd(long address, long size) {
    UffdLibC c = Native.libc();
    int fd = (int) c.syscall(Userfaultfd.SYS_USERFAULTFD, Userfaultfd.O_CLOEXEC | Userfaultfd.O_NONBLOCK);
    Pointer api = Native.allocate(24);
    api.putLong(0, Userfaultfd.UFFD_API);
    api.putLong(8, Userfaultfd.FEATURE_MISSING_SHMEM);
    RawMemory.expect("UFFDIO_API", 0, c.ioctl(fd, Userfaultfd.UFFDIO_API, api));
    Pointer reg = Native.allocate(32);
    reg.putLong(0, address);
    reg.putLong(8, size);
    reg.putLong(16, Userfaultfd.MODE_MISSING);
    RawMemory.expect("UFFDIO_REGISTER", 0, c.ioctl(fd, Userfaultfd.UFFDIO_REGISTER, reg));
    return fd;
  }
}
