package dev.gmem.examples.bench;

import com.kenai.jffi.MemoryIO;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.MapFlags;
import dev.gmem.api.Memslot;
import dev.gmem.api.Prot;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.migrate.DestinationOptions;
import dev.gmem.migrate.MigrationDestination;
import dev.gmem.migrate.MigrationSource;
import dev.gmem.migrate.SourceOptions;
import dev.gmem.userfault.Userfault;
import dev.gmem.userfault.uffd.Native;
import dev.gmem.userfault.uffd.Userfaultfd;
import dev.gmem.userfault.uffd.libc.UffdLibC;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
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
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * <b>Post-copy migration over loopback TCP</b> (issue 14, gmem-migrate), kvm backend, the
 * destination in the same JVM as the source (two runtimes).
 *
 * <ul>
 *   <li><b>Demand fault over TCP</b>, one faulting thread, no background stream: a host access to a
 *       missing page of the destination (async userfault) → REQUEST on the demand connection → the
 *       source reads the page and answers with it (CRC32C) → checked, installed, the access goes
 *       on. Baseline: a raw userfaultfd MISSING handler over a raw memfd, which sends the page's
 *       number over a TCP socket to a page-server thread reading a raw memfd mapping and answering
 *       with the 4096 bytes, then UFFDIO_COPY from the receive buffer; the fault is a
 *       {@code write(pipe, page)} from native code (DemandFaultBench's).</li>
 *   <li><b>Whole-memory transfer</b> of {@code sizeMiB}: handshake to COMPLETE of a migration whose
 *       guest touches nothing. Baseline: the same bytes from a raw guest_memfd mapping (the kvm
 *       backend's kernel object; a memfd where the kernel has no guest_memfd, as the backend then
 *       uses) through a loopback socket into another VM's, in 256 KiB chunks
 *       through direct buffers, one copy on each side.</li>
 *   <li><b>Demand fault while the stream saturates the link</b> (p99, SampleTime) against the same
 *       fault on an idle link (p50): the preempt channel at work.</li>
 * </ul>
 *
 * <p>The userfault feature is on here: it is what the destination runs on.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(value = BenchDefaults.FORKS, jvmArgsAppend = BenchDefaults.NATIVE_ACCESS)
@Warmup(iterations = BenchDefaults.WARMUP_ITERATIONS, time = BenchDefaults.ITERATION_SECONDS)
@Measurement(iterations = BenchDefaults.MEASUREMENT_ITERATIONS, time = BenchDefaults.ITERATION_SECONDS)
public class PostcopyBench {
  static final int PAGE = 4096;
  static final int FAULT_PAGES = 256;

  static InetSocketAddress loopback() {
    return new InetSocketAddress(InetAddress.getLoopbackAddress(), 0);
  }

  static GmemRuntime runtime() {
    return GmemRuntime.builder().property("gmem.backend", "kvm").build();
  }

  /** A source VM of {@code pages} pages of non-zero content. */
  static Vm sourceVm(GmemRuntime rt, long pages) {
    Vm vm = rt.createVm(VmType.DEFAULT);
    GuestMemFile f = vm.createGuestMemFile(pages * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
    vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, pages * PAGE, f, 0);
    byte[] chunk = new byte[1 << 20];
    for (int i = 0; i < chunk.length; i += 8) {
      ByteBuffer.wrap(chunk).putLong(i, i + 1);
    }
    for (long off = 0; off < pages * PAGE; off += chunk.length) {
      vm.guestMemory().write(off, chunk, 0, (int) Math.min(chunk.length, pages * PAGE - off));
    }
    return vm;
  }

  /** A migration from {@code vm} to a destination in {@code dst}; returns once the destination may run. */
  static MigrationDestination migrate(GmemRuntime dst, Vm vm, SourceOptions opts, MigrationSource[] source) throws Exception {
    MigrationDestination d = MigrationDestination.listen(dst, loopback(), DestinationOptions.defaults());
    CompletableFuture<MigrationDestination> accepted = CompletableFuture.supplyAsync(() -> {
      try {
        return d.accept();
      } catch (IOException e) {
        throw new IllegalStateException(e);
      }
    });
    source[0] = MigrationSource.start(vm, List.of(), "127.0.0.1", d.port(), opts);
    accepted.get(60, TimeUnit.SECONDS);
    return d;
  }

  // ---- demand faults -----------------------------------------------------------------------------------

  /** A migration without background stream: every page comes on demand; the untimed setup makes them missing again. */
  @State(Scope.Thread)
  public static class GmemDemand {
    GmemRuntime a;
    GmemRuntime b;
    Vm vm;
    MigrationSource[] source = new MigrationSource[1];
    MigrationDestination d;
    Userfault uf;
    int next;

    @Setup(Level.Trial)
    public void open() throws Exception {
      a = runtime();
      b = runtime();
      vm = sourceVm(a, 16384);
      d = migrate(b, vm, SourceOptions.defaults().withBackground(false), source);
      uf = b.feature(Userfault.class).orElseThrow();
    }

    @Setup(Level.Invocation)
    public void missing() {
      uf.bitmap(d.vm(), 0).setAll();
      next = 0;
    }

    /** The next page, missing again (for the idle-link sampler: one page per op). */
    long nextGpa() {
      if (next == 16384) {
        missing();
      }
      return (long) next++ * PAGE;
    }

    @TearDown(Level.Trial)
    public void close() {
      source[0].close();
      d.close();
      vm.close();
      b.close();
      a.close();
    }
  }

  @State(Scope.Thread)
  public static class RawDemand {
    RawMemory src;
    RawMemory dst;
    long srcMap;
    long dstMap;
    int uffd;
    ServerSocketChannel server;
    Thread pageServer;
    Thread handler;
    DemandFaultBench.Pipe pipe;
    volatile boolean running = true;

    @Setup(Level.Trial)
    public void open() throws IOException {
      long size = (long) FAULT_PAGES * PAGE;
      src = RawMemory.open("memfd", size);
      srcMap = src.map();
      ByteBuffer fill = ByteBuffer.allocate(PAGE);
      for (int i = 0; i < PAGE; i += 8) {
        fill.putLong(i, i + 1);
      }
      Pointer sp = Pointer.wrap(jnr.ffi.Runtime.getSystemRuntime(), srcMap);
      for (long off = 0; off < size; off += PAGE) {
        sp.put(off, fill.array(), 0, PAGE);
      }
      dst = RawMemory.open("memfd", size);
      dstMap = dst.map();
      server = ServerSocketChannel.open().bind(loopback());
      pageServer = new Thread(this::servePages, "raw-page-server");
      pageServer.setDaemon(true);
      pageServer.start();
      SocketChannel link = SocketChannel.open(server.getLocalAddress());
      link.setOption(StandardSocketOptions.TCP_NODELAY, true);
      uffd = DemandFaultBench.rawMissingUffd(dstMap, size);
      handler = new Thread(() -> handle(link), "raw-uffd-socket-handler");
      handler.setDaemon(true);
      handler.start();
      pipe = new DemandFaultBench.Pipe();
    }

    /** The raw page server: a page number in, its 4096 bytes out, from the source mapping. */
    private void servePages() {
      try (SocketChannel ch = server.accept()) {
        ch.setOption(StandardSocketOptions.TCP_NODELAY, true);
        ByteBuffer req = ByteBuffer.allocateDirect(8);
        ByteBuffer page = ByteBuffer.allocateDirect(PAGE);
        long pageAddr = MemoryIO.getInstance().getDirectBufferAddress(page);
        while (running) {
          req.clear();
          while (req.hasRemaining()) {
            if (ch.read(req) < 0) {
              return;
            }
          }
          long n = req.getLong(0);
          MemoryIO.getInstance().copyMemory(srcMap + n * PAGE, pageAddr, PAGE);
          page.clear();
          while (page.hasRemaining()) {
            ch.write(page);
          }
        }
      } catch (IOException e) {
        // closed
      }
    }

    /** The raw handler: poll, read the fault, ask the page server, UFFDIO_COPY from the receive buffer. */
    private void handle(SocketChannel link) {
      UffdLibC c = Native.libc();
      Pointer fds = Native.allocate(8);
      fds.putInt(0, uffd);
      fds.putShort(4, (short) 1);
      Pointer msg = Native.allocate(32);
      Pointer copy = Native.allocate(40);
      ByteBuffer req = ByteBuffer.allocateDirect(8);
      ByteBuffer page = ByteBuffer.allocateDirect(PAGE);
      long pageAddr = MemoryIO.getInstance().getDirectBufferAddress(page);
      try {
        while (running) {
          if (c.poll(fds, 1, 100) <= 0) {
            continue;
          }
          if (c.read(uffd, msg.address(), 32) != 32) {
            continue;
          }
          long addr = msg.getLong(16) & ~(long) (PAGE - 1);
          req.clear();
          req.putLong(0, (addr - dstMap) / PAGE);
          while (req.hasRemaining()) {
            link.write(req);
          }
          page.clear();
          while (page.hasRemaining()) {
            if (link.read(page) < 0) {
              return;
            }
          }
          copy.putLong(0, addr);
          copy.putLong(8, pageAddr);
          copy.putLong(16, PAGE);
          copy.putLong(24, 0);
          c.ioctl(uffd, Userfaultfd.UFFDIO_COPY, copy);
        }
      } catch (IOException e) {
        // closed
      }
    }

    @Setup(Level.Invocation)
    public void missing() {
      RawMemory.SYS.fallocate(dst.fd, dev.gmem.api.Fallocate.KEEP_SIZE | dev.gmem.api.Fallocate.PUNCH_HOLE, 0, (long) FAULT_PAGES * PAGE);
    }

    @TearDown(Level.Trial)
    public void close() throws Exception {
      running = false;
      handler.join();
      server.close();
      pipe.close();
      Native.libc().close(uffd);
      dst.close();
      src.close();
    }
  }

  @Benchmark
  @OperationsPerInvocation(FAULT_PAGES)
  @Paired(baseline = "rawUffdSocketDemandFault", maxRatio = 1.25)
  public long gmemTcpDemandFault(GmemDemand s) {
    long n = 0;
    for (long p = 0; p < FAULT_PAGES; p++) {
      n += s.d.vm().guestMemory().loadLong(p * PAGE + 8);
    }
    return n;
  }

  @Benchmark
  @OperationsPerInvocation(FAULT_PAGES)
  public long rawUffdSocketDemandFault(RawDemand s) {
    long n = 0;
    for (long off = 0; off < (long) FAULT_PAGES * PAGE; off += PAGE) {
      n += s.pipe.fault(s.dstMap + off);
    }
    return n;
  }

  // ---- whole-memory transfer ----------------------------------------------------------------------------

  @State(Scope.Thread)
  public static class GmemTransfer {
    @Param({"1024"})
    long sizeMiB;

    GmemRuntime a;
    GmemRuntime b;
    Vm vm;
    MigrationDestination d;
    CompletableFuture<MigrationDestination> accepted;

    @Setup(Level.Trial)
    public void open() {
      a = runtime();
      b = runtime();
      vm = sourceVm(a, (sizeMiB << 20) / PAGE);
    }

    @Setup(Level.Invocation)
    public void listen() throws IOException {
      d = MigrationDestination.listen(b, loopback(), DestinationOptions.defaults());
      MigrationDestination dd = d;
      accepted = CompletableFuture.supplyAsync(() -> {
        try {
          return dd.accept();
        } catch (IOException e) {
          throw new IllegalStateException(e);
        }
      });
    }

    @TearDown(Level.Invocation)
    public void closeDestination() {
      d.close();
    }

    @TearDown(Level.Trial)
    public void close() {
      vm.close();
      b.close();
      a.close();
    }
  }

  @State(Scope.Thread)
  public static class RawTransfer {
    @Param({"1024"})
    long sizeMiB;

    RawMemory src;
    RawMemory dst;
    long srcMap;
    long dstMap;

    @Setup(Level.Trial)
    public void open() {
      long size = sizeMiB << 20;
      // The kernel object gmem's kvm backend stands on, on both sides: a guest_memfd where the
      // kernel has one (a memfd's shmem pages cost the receiver more per page - LRU and accounting -
      // so a memfd baseline there flattered the ratio by doing extra work), else the memfd the
      // backend then uses too (RawMemory.kvmBackendMemory).
      src = RawMemory.open("kvm", size);
      srcMap = src.map();
      Pointer sp = Pointer.wrap(jnr.ffi.Runtime.getSystemRuntime(), srcMap);
      byte[] chunk = new byte[1 << 20];
      for (int i = 0; i < chunk.length; i += 8) {
        ByteBuffer.wrap(chunk).putLong(i, i + 1);
      }
      for (long off = 0; off < size; off += chunk.length) {
        sp.put(off, chunk, 0, chunk.length);
      }
      dst = RawMemory.open("kvm", size);
      dstMap = dst.map();
    }

    @Setup(Level.Invocation)
    public void empty() {
      RawMemory.SYS.fallocate(dst.fd, dev.gmem.api.Fallocate.KEEP_SIZE | dev.gmem.api.Fallocate.PUNCH_HOLE, 0, sizeMiB << 20);
    }

    @TearDown(Level.Trial)
    public void close() {
      dst.close();
      src.close();
    }
  }

  /**
   * Warm-up shots of the transfers. Three were not enough: a single shot runs each side's code
   * once per GiB, so after three gmem's migration path was still being compiled while measured
   * (perf: C2's threads took 15% of the CPU samples, on a 2-core host where every stage wants a
   * core) and its shots took 1.00–1.42 s where ten warm-up shots leave 0.92–1.10 s. Both sides get
   * the same count.
   */
  static final int TRANSFER_WARMUPS = 10;

  @Benchmark
  @BenchmarkMode(Mode.SingleShotTime)
  @OutputTimeUnit(TimeUnit.MILLISECONDS)
  @Warmup(iterations = TRANSFER_WARMUPS)
  @Paired(baseline = "rawSocketTransfer", maxRatio = 1.25)
  public long gmemTransfer(GmemTransfer s) throws Exception {
    try (MigrationSource src = MigrationSource.start(s.vm, List.of(), "127.0.0.1", s.d.port(), SourceOptions.defaults())) {
      s.accepted.get(60, TimeUnit.SECONDS);
      return src.await(Duration.ofMinutes(5)).pages();
    }
  }

  @Benchmark
  @BenchmarkMode(Mode.SingleShotTime)
  @OutputTimeUnit(TimeUnit.MILLISECONDS)
  @Warmup(iterations = TRANSFER_WARMUPS)
  public long rawSocketTransfer(RawTransfer s) throws Exception {
    long size = s.sizeMiB << 20;
    int chunk = 256 << 10;
    try (ServerSocketChannel server = ServerSocketChannel.open().bind(loopback())) {
      CompletableFuture<Long> receiver = CompletableFuture.supplyAsync(() -> {
        try (SocketChannel ch = server.accept()) {
          ByteBuffer in = ByteBuffer.allocateDirect(chunk);
          long inAddr = MemoryIO.getInstance().getDirectBufferAddress(in);
          long got = 0;
          while (got < size) {
            in.clear();
            int n = ch.read(in);
            if (n < 0) {
              throw new IOException("short transfer");
            }
            MemoryIO.getInstance().copyMemory(inAddr, s.dstMap + got, n);
            got += n;
          }
          return got;
        } catch (IOException e) {
          throw new IllegalStateException(e);
        }
      });
      try (SocketChannel ch = SocketChannel.open(server.getLocalAddress())) {
        ByteBuffer out = ByteBuffer.allocateDirect(chunk);
        long outAddr = MemoryIO.getInstance().getDirectBufferAddress(out);
        for (long off = 0; off < size; off += chunk) {
          MemoryIO.getInstance().copyMemory(s.srcMap + off, outAddr, chunk);
          out.clear();
          while (out.hasRemaining()) {
            ch.write(out);
          }
        }
      }
      return receiver.get(5, TimeUnit.MINUTES);
    }
  }

  // ---- demand latency under a saturated stream ----------------------------------------------------------

  /** A migration of 1 GiB whose stream runs flat out; faults go after pages ahead of it, from the top down. */
  @State(Scope.Thread)
  public static class Saturated {
    GmemRuntime a;
    GmemRuntime b;
    Vm vm;
    long pages = (1L << 30) / PAGE;
    MigrationSource[] source = new MigrationSource[1];
    MigrationDestination d;
    long next;

    @Setup(Level.Trial)
    public void open() {
      a = runtime();
      b = runtime();
      vm = sourceVm(a, pages);
    }

    @Setup(Level.Iteration)
    public void start() throws Exception {
      d = migrate(b, vm, SourceOptions.defaults(), source);
      next = pages - 1;
    }

    /** The highest page still missing: ahead of the stream. */
    long nextGpa() {
      while (next > 0 && !d.pageServer().missing(next)) {
        next--;
      }
      return next-- * PAGE;
    }

    @TearDown(Level.Iteration)
    public void stop() {
      source[0].close();
      d.close();
    }

    @TearDown(Level.Trial)
    public void close() {
      vm.close();
      b.close();
      a.close();
    }
  }

  @Benchmark
  @BenchmarkMode(Mode.SampleTime)
  @Paired(baseline = "demandFaultIdleLink", maxRatio = 2, gmemPercentile = 99, baselinePercentile = 50)
  public long demandFaultSaturatedLink(Saturated s) {
    return s.d.vm().guestMemory().loadLong(s.nextGpa());
  }

  @Benchmark
  @BenchmarkMode(Mode.SampleTime)
  public long demandFaultIdleLink(GmemDemand s) {
    return s.d.vm().guestMemory().loadLong(s.nextGpa());
  }
}
