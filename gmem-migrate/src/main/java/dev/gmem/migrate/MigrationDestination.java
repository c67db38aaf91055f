package dev.gmem.migrate;

import dev.gmem.api.Api;
import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.ShareabilityRange;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.migrate.wire.Frames;
import dev.gmem.migrate.wire.Handshake;
import dev.gmem.migrate.wire.Wire;
import dev.gmem.userfault.LatencyHistogram;
import dev.gmem.userfault.Userfault;
import dev.gmem.userfault.source.PageServer;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The receiving side of a post-copy migration. {@link #listen} binds; {@link #accept} waits for a
 * source's handshake, creates the VM (files, shareability, memslots with {@code KVM_MEM_USERFAULT}
 * and every page missing, vCPUs with the source's state) and lets it run at once: run vCPUs
 * through {@link #run}. Faults on missing pages are requested on the demand channel, ahead of the
 * background stream; every page is checked (CRC32C) before it is installed, and a bad one breaks
 * the link instead of reaching the guest.
 *
 * <p>A broken link waits {@link DestinationOptions#recoveryTimeout()} for the source to resume the
 * session; meanwhile faults wait (at most the fault deadline). When the source does not come back,
 * the VM is paused for good: {@link #run} and every access to a missing page fail with EIO, never
 * with a zero page. Once every page is resident the destination clears {@code KVM_MEM_USERFAULT}
 * from its memslots (huge mappings and the lock-free access path again), acknowledges completion
 * and owns the VM.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public final class MigrationDestination implements AutoCloseable {
  private final GmemRuntime rt;
  private final ServerSocketChannel listener;
  final DestinationOptions options;
  final CompletableFuture<MigrationStats> done = new CompletableFuture<>();
  final ConcurrentHashMap<Long, Long> urgent = new ConcurrentHashMap<>();
  /** When the guest last faulted a page urgently: the stream reader yields after its runs while faults come. */
  volatile long lastDemandNanos = System.nanoTime() - 2 * SourceLink.DEMAND_QUIET_NANOS;
  final LinkedBlockingQueue<Long> demandQueue = new LinkedBlockingQueue<>();
  final PageReceiver receiver = new PageReceiver(this);
  final LatencyHistogram roundTrip = new LatencyHistogram();
  final AtomicLong streamBytes = new AtomicLong();
  final AtomicLong demandBytes = new AtomicLong();
  final AtomicLong demandRequests = new AtomicLong();
  private final AtomicLong downCount = new AtomicLong();
  private volatile int reconnects;
  private long started;
  private long downtimeNanos;
  private Handshake handshake;
  PageMap map;
  Vm vm;
  private final List<Vcpu> vcpus = new ArrayList<>();
  PageServer pages;
  Userfault uf;
  private long session;
  volatile DestinationLink link;
  private volatile Preallocator prealloc;
  private Frames pendingMain;
  private Thread acceptor;
  private volatile boolean closed;
  private volatile String lastCause;
  /** Recovery watchdogs asleep: close() wakes them, so none outlives the destination by a recovery timeout. */
  private final java.util.Set<Thread> watchdogs = ConcurrentHashMap.newKeySet();
  /** The files the handshake created for the VM: closed with it. */
  private final List<GuestMemFile> files = new CopyOnWriteArrayList<>();

  private MigrationDestination(GmemRuntime rt, ServerSocketChannel listener, DestinationOptions options) {
    this.rt = rt;
    this.listener = listener;
    this.options = options;
  }

  /** Binds {@code address} (port 0: any free port, see {@link #port()}). */
  public static MigrationDestination listen(GmemRuntime rt, InetSocketAddress address, DestinationOptions options) throws IOException {
    ServerSocketChannel s = ServerSocketChannel.open();
    try {
      s.bind(address);
    } catch (IOException e) {
      s.close();
      throw e;
    }
    return new MigrationDestination(rt, s, options);
  }

  public int port() {
    try {
      return ((InetSocketAddress) listener.getLocalAddress()).getPort();
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
  }

  /**
   * Waits for a source's handshake and creates the VM; returns once it may run. A handshake this
   * side cannot honour is refused (the source is told why, with the errno) and thrown here as
   * {@link GmemException}; nothing is left behind and {@code accept} may be called again.
   */
  public MigrationDestination accept() throws IOException {
    while (true) {
      SocketChannel ch = listener.accept();
      Frames f = new Frames(ch);
      Frames.Hello hello;
      byte[] bytes;
      AnswerDeadline silent = AnswerDeadline.closeAfter(f, Math.max(1000, options.recoveryTimeout().toMillis()));
      try {
        hello = f.readHello();
        if (hello.kind() != Wire.KIND_MAIN) {
          f.refuse(Errno.EINVAL.code(), "no migration in progress here to resume");
          f.close();
          continue;
        }
        if (f.readType() != Wire.HANDSHAKE) {
          throw new Frames.ProtocolException("expected a handshake");
        }
        bytes = f.readBytes(f.readInt());
        if (!silent.cancel()) {
          throw new IOException("no handshake in time");
        }
      } catch (IOException e) {
        silent.cancel();
        f.close();
        continue; // not a migration peer, or a silent one: keep listening
      }
      long t0 = System.nanoTime();
      started = t0;
      try {
        Handshake hs = Handshake.decode(bytes);
        create(hs);
      } catch (GmemException e) {
        f.refuse(e.errno().code(), e.getMessage());
        f.close();
        throw e;
      } catch (IOException e) {
        f.refuse(Errno.EINVAL.code(), "malformed handshake: " + e.getMessage());
        f.close();
        throw GmemException.einval("malformed handshake from the source: " + e.getMessage());
      } catch (RuntimeException e) {
        f.refuse(Errno.EINVAL.code(), "the handshake could not be honoured: " + e);
        f.close();
        throw e;
      }
      session = new SecureRandom().nextLong();
      f.accept(session);
      downtimeNanos = System.nanoTime() - t0;
      synchronized (this) {
        pendingMain = f;
      }
      acceptor = new Thread(this::acceptLoop, "gmem-migrate-accept");
      acceptor.setDaemon(true);
      acceptor.start();
      return this;
    }
  }

  private void create(Handshake hs) {
    if (!hs.arch().equals(System.getProperty("os.arch"))) {
      throw new GmemException(Errno.EINVAL, "the source runs on " + hs.arch() + ", this host on " + System.getProperty("os.arch"));
    }
    if (hs.type() == VmType.TDX || hs.type() == VmType.SNP) {
      throw new GmemException(Errno.EOPNOTSUPP, hs.type() + " VMs cannot be migrated by gmem: their private memory is "
          + "encrypted by the hardware, and moving it needs the firmware's migration support (a migration TD for TDX, "
          + "a migration agent for SEV-SNP), which gmem does not drive");
    }
    Userfault uf = rt.feature(Userfault.class)
        .orElseThrow(() -> new GmemException(Errno.EOPNOTSUPP, "the destination's userfault feature is off: post-copy needs it"));
    HostCapacity.check(hs);
    Vm v = rt.createVm(hs.type());
    List<Vcpu> made = new ArrayList<>();
    List<GuestMemFile> created = new ArrayList<>();
    try {
      for (Handshake.FileInfo fi : hs.files()) {
        GuestMemFile file = v.createGuestMemFile(fi.size(), fi.flags());
        created.add(file);
        for (ShareabilityRange r : fi.shareability()) {
          long off = r.start() * Wire.PAGE;
          long len = r.nrPages() * Wire.PAGE;
          if (!Optional.of(r.shareability()).equals(file.shareability(off, len))) {
            file.setShareability(off, len, r.shareability());
          }
        }
      }
      for (Handshake.SlotInfo s : hs.slots()) {
        v.setMemoryRegion(s.slot(), s.flags() | Userfault.MEM_USERFAULT, s.gpa(), s.size(), created.get(s.file()), s.offset());
      }
      this.handshake = hs;
      this.map = new PageMap(hs.slots());
      this.vm = v;
      this.uf = uf;
      this.pages = PageServer.start(uf, v, new NetworkPageSource(this));
      for (Handshake.VcpuState st : hs.vcpus()) {
        Vcpu c = v.createVcpu(st.id());
        made.add(c);
        c.setSpecialRegisters(st.specialRegisters());
        c.setRegisters(st.registers());
      }
      vcpus.addAll(made);
      files.addAll(created);
      this.prealloc = Preallocator.start(hs.slots(), created, () -> lastDemandNanos);
    } catch (RuntimeException e) {
      made.forEach(Vcpu::close);
      if (pages != null) {
        pages.close();
        pages = null;
      }
      v.close();
      created.forEach(GuestMemFile::close);
      vm = null;
      throw e;
    }
  }

  // ---- what the VMM uses ------------------------------------------------------------------------------

  public Vm vm() {
    return vm;
  }

  /** The vCPUs, in the source's order, with the source's state. */
  public List<Vcpu> vcpus() {
    return List.copyOf(vcpus);
  }

  public PageServer pageServer() {
    return pages;
  }

  public Handshake handshake() {
    return handshake;
  }

  /** Runs {@code vcpu} to its next exit that is not a missing page (those wait for their page); EIO once paused. */
  public VcpuExit run(Vcpu vcpu) {
    return pages.run(vcpu);
  }

  /** Whether every page is resident and the source was told so. */
  public boolean completed() {
    return done.isDone() && !done.isCompletedExceptionally();
  }

  /** Whether the VM is paused for good (the source is gone with pages still missing). */
  public boolean paused() {
    return pages != null && pages.paused();
  }

  /** Waits until every page is resident; EIO when the migration failed, EAGAIN when {@code timeout} passed first. */
  public MigrationStats await(Duration timeout) {
    return Completion.await(done, timeout);
  }

  /** Pages, rate, what is left and when it should be done. */
  public Progress progress() {
    long total = map.total();
    long resident = pages.residentPages();
    double secs = Math.max(1e-9, (System.nanoTime() - started) / 1e9);
    double rate = (streamBytes() + demandBytes()) / 1048576.0 / secs;
    long left = total - resident;
    double eta = rate <= 0 ? Double.POSITIVE_INFINITY : left * Wire.PAGE / 1048576.0 / rate;
    return new Progress(resident, total, rate, left, eta, demandRequests.get(), pages.paused() ? pages.failure() : null);
  }

  /** A progress line's numbers. */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  public record Progress(long resident, long total, double mibPerSecond, long remaining, double etaSeconds, long demandFaults, String paused) {
    @Override
    public String toString() {
      int width = 30;
      int filled = total == 0 ? width : (int) (width * resident / total);
      return String.format("[%s%s] %d/%d pages %5.1f%%  %.1f MiB/s  %.1f MiB left  ETA %s  %d demand faults%s", "#".repeat(filled),
          ".".repeat(width - filled), resident, total, total == 0 ? 100.0 : 100.0 * resident / total, mibPerSecond,
          remaining * Wire.PAGE / 1048576.0, Double.isInfinite(etaSeconds) ? "?" : String.format("%.1f s", etaSeconds), demandFaults,
          paused == null ? "" : "  PAUSED: " + paused);
    }
  }

  private long streamBytes() {
    DestinationLink l = link;
    return streamBytes.get() + (l == null ? 0 : l.main.bytesIn() + l.main.bytesOut());
  }

  private long demandBytes() {
    DestinationLink l = link;
    return demandBytes.get() + (l == null ? 0 : l.demand.bytesIn() + l.demand.bytesOut());
  }

  MigrationStats stats() {
    return new MigrationStats(Duration.ofNanos(System.nanoTime() - started), Duration.ofNanos(downtimeNanos), map.total(),
        demandRequests.get(), streamBytes(), demandBytes(), reconnects, roundTrip);
  }

  /** The allocation ahead of the stream, once the handshake is accepted (tests). */
  Preallocator preallocator() {
    return prealloc;
  }

  /**
   * Closes the connections, the page server (pages still missing stay missing: their faults fail),
   * the vCPUs, the VM and the files it made for the VM, whose memory goes with them.
   */
  @Override
  public void close() {
    closed = true;
    try {
      listener.close();
    } catch (IOException ignored) {
      // closing
    }
    DestinationLink l = link;
    if (l != null) {
      l.close();
      l.awaitInstalls(1000); // no install may run into the VM's close
    }
    synchronized (this) {
      if (pendingMain != null) {
        pendingMain.close();
      }
    }
    if (!done.isDone()) {
      done.completeExceptionally(new GmemException(Errno.EIO, "the destination was closed before the migration completed"));
    }
    watchdogs.forEach(Thread::interrupt);
    if (prealloc != null) {
      prealloc.stop(); // no allocation may run into the VM's close
    }
    if (pages != null) {
      pages.close();
    }
    vcpus.forEach(Vcpu::close);
    if (vm != null) {
      vm.close();
    }
    files.forEach(GuestMemFile::close); // the VM's memory: a closed VM's files would hold it until the runtime closes
  }

  // ---- connections after the handshake ----------------------------------------------------------------

  private void acceptLoop() {
    while (!closed) {
      SocketChannel ch;
      try {
        ch = listener.accept();
      } catch (IOException e) {
        return; // closed
      }
      Thread t = new Thread(() -> greet(ch), "gmem-migrate-greet");
      t.setDaemon(true);
      t.start();
    }
  }

  private void greet(SocketChannel ch) {
    Frames f;
    try {
      f = new Frames(ch);
    } catch (IOException e) {
      return;
    }
    try {
      // A connection that never says hello would hold this thread for ever (one per connection).
      AnswerDeadline silent = AnswerDeadline.closeAfter(f, Math.max(1000, options.recoveryTimeout().toMillis()));
      Frames.Hello hello = f.readHello();
      if (!silent.cancel()) {
        throw new IOException("no hello in time");
      }
      if (hello.session() != session) {
        f.refuse(Errno.EINVAL.code(), "unknown migration session");
        f.close();
        return;
      }
      if (hello.kind() == Wire.KIND_RESUME) {
        resume(f);
      } else if (hello.kind() == Wire.KIND_DEMAND) {
        pair(f);
      } else {
        f.refuse(Errno.EINVAL.code(), "a migration is already in progress here");
        f.close();
      }
    } catch (IOException e) {
      f.close();
    }
  }

  private void resume(Frames f) throws IOException {
    if (completed()) {
      f.complete(); // the acknowledgement may have been lost with the old link
      f.close();
      return;
    }
    if (done.isDone()) {
      f.refuse(Errno.EIO.code(), "the destination gave up: " + pages.failure());
      f.close();
      return;
    }
    DestinationLink old = link;
    if (old != null) {
      linkDown(old, new IOException("the source resumed on a new connection"));
    }
    synchronized (this) {
      if (pendingMain != null) {
        pendingMain.close();
      }
      pendingMain = f;
    }
    f.missing(missing());
  }

  private void pair(Frames demand) throws IOException {
    Frames main;
    synchronized (this) {
      main = pendingMain;
      pendingMain = null;
    }
    if (main == null || done.isDone()) {
      demand.close();
      return;
    }
    DestinationLink l = new DestinationLink(this, main, demand);
    boolean resumed;
    synchronized (this) {
      resumed = downCount.get() > 0;
      if (resumed) {
        reconnects++;
      }
      link = l;
    }
    if (resumed) {
      MigrationEvent.LinkRecovered e = new MigrationEvent.LinkRecovered();
      if (e.isEnabled()) {
        e.cause = lastCause;
        e.missing = map.total() - pages.residentPages();
        e.commit();
      }
    }
    if (resumed) {
      for (Long g : urgent.keySet()) { // requests the old link may have lost
        if (pages.missing(g)) {
          demandQueue.add(g);
        } else {
          urgent.remove(g);
        }
      }
    }
    l.start();
  }

  long[] missing() {
    if (pages.complete()) {
      return new long[0]; // one popcount of the bitmaps instead of a lookup per page at END
    }
    long total = map.total();
    long[] out = new long[(int) Math.min(total, 1 << 16)];
    int n = 0;
    for (long i = 0; i < total; i++) {
      long g = map.gfn(i);
      if (pages.missing(g)) {
        if (n == out.length) {
          out = java.util.Arrays.copyOf(out, (int) Math.min(total, out.length * 2L));
        }
        out[n++] = g;
      }
    }
    return java.util.Arrays.copyOf(out, n);
  }

  void linkDown(DestinationLink l, Throwable cause) {
    long generation;
    synchronized (this) {
      if (link != l) {
        l.close();
        return;
      }
      link = null;
      lastCause = String.valueOf(cause);
      generation = downCount.incrementAndGet();
    }
    l.close();
    if (done.isDone()) {
      return;
    }
    Thread watchdog = new Thread(() -> {
      try {
        Thread.sleep(options.recoveryTimeout().toMillis());
      } catch (InterruptedException e) {
        return;
      } finally {
        watchdogs.remove(Thread.currentThread());
      }
      synchronized (this) {
        if (link != null || downCount.get() != generation || done.isDone()) {
          return; // resumed (and maybe broken again: that one has its own watchdog)
        }
      }
      giveUp("the migration source was lost (" + cause + ") and did not reconnect within " + options.recoveryTimeout());
    }, "gmem-migrate-recovery-watchdog");
    watchdog.setDaemon(true);
    watchdogs.add(watchdog);
    if (closed) {
      watchdogs.remove(watchdog);
      return;
    }
    watchdog.start();
  }

  private void giveUp(String why) {
    pages.failed(why);
    done.completeExceptionally(new GmemException(Errno.EIO, why));
    finished("failed: " + why);
  }

  /**
   * Every page is resident: drops {@code KVM_MEM_USERFAULT} from the VM's memslots, as QEMU and
   * Firecracker end post-copy. While the flag is set the guest maps 4 KiB only and every access to
   * the slots' memory takes the fault interceptor's path; the bitmap has no bit left to honour.
   */
  void endPostcopy() {
    for (Memslot m : vm.memslots()) {
      if ((m.flags() & Userfault.MEM_USERFAULT) != 0) {
        vm.setMemoryRegion(m.slot(), m.flags() & ~Userfault.MEM_USERFAULT, m.gpa(), m.size(), m.file(), m.offset());
      }
    }
  }

  void finished(String outcome) {
    MigrationEvent.Finished.commit("destination", outcome, stats());
  }
}
