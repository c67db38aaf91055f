package dev.gmem.migrate;

import dev.gmem.api.Api;
import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vcpu;
import dev.gmem.api.Vm;
import dev.gmem.migrate.wire.Frames;
import dev.gmem.migrate.wire.Handshake;
import dev.gmem.migrate.wire.Wire;
import dev.gmem.userfault.LatencyHistogram;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * The sending side of a post-copy migration. {@link #start} sends the handshake (the VM must be
 * stopped: its vCPUs' state is taken now — the switch-over) and returns once the destination
 * accepted; from then on the destination runs the VM, faults pages in over the demand channel and
 * receives the rest on the background stream. The source's VM is only read, never changed: until
 * the destination acknowledges that every page is resident ({@link #await} returns), the source
 * owns every page and may resume the VM if the migration fails. A broken link is recovered: the
 * source reconnects within {@link SourceOptions#recoveryTimeout()} and streams exactly the pages
 * the destination reports missing.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public final class MigrationSource implements AutoCloseable {
  final Vm vm;
  private final String host;
  private final int port;
  final SourceOptions options;
  private final Handshake handshake;
  final PageMap map;
  final List<Memslot> slots;
  final PageReader reader;
  private final long started;
  final CompletableFuture<MigrationStats> done = new CompletableFuture<>();
  final Object orderLock = new Object();
  long[] order;
  int next;
  boolean endDue;
  volatile AtomicLongArray demandSent;
  volatile SourceLink link;
  private long session;
  private long downtimeNanos;
  final AtomicLong streamBytes = new AtomicLong();
  final AtomicLong demandBytes = new AtomicLong();
  final AtomicLong demandRequests = new AtomicLong();
  /** When the last demand request came ({@link System#nanoTime}): the stream shortens its runs for a while. */
  volatile long lastDemandNanos = System.nanoTime() - SourceLink.DEMAND_QUIET_NANOS;
  final AtomicLong streamed = new AtomicLong();
  /** Demand requests being answered now: the stream steps aside meanwhile (the preempt channel's point). */
  final AtomicInteger demandBusy = new java.util.concurrent.atomic.AtomicInteger();
  private volatile int reconnects;

  private MigrationSource(Vm vm, Handshake handshake, String host, int port, SourceOptions options) {
    this.vm = vm;
    this.host = host;
    this.port = port;
    this.options = options;
    this.handshake = handshake;
    this.map = new PageMap(handshake.slots());
    this.slots = vm.memslots();
    this.reader = new PageReader(vm, slots);
    this.started = System.nanoTime();
    this.order = initialOrder();
    this.endDue = true;
    this.demandSent = new AtomicLongArray((int) ((map.total() + 63) >>> 6));
  }

  /**
   * Starts migrating {@code vm} (stopped: {@code vcpus} are not running) to the destination
   * listening at {@code host:port}; returns once the destination accepted the handshake. Throws
   * {@link GmemException} with the destination's errno when it refused (EOPNOTSUPP for TDX and SNP
   * VMs) and IOException when it cannot be reached; nothing of the source's VM changed either way.
   */
  public static MigrationSource start(Vm vm, List<Vcpu> vcpus, String host, int port, SourceOptions options) throws IOException {
    Handshake hs = handshakeOf(vm, vcpus);
    MigrationSource s = new MigrationSource(vm, hs, host, port, options);
    s.connectFirst();
    return s;
  }

  /** What the destination is told: files, shareability, memslots, vCPU state. */
  static Handshake handshakeOf(Vm vm, List<Vcpu> vcpus) {
    List<GuestMemFile> files = new ArrayList<>();
    List<Handshake.SlotInfo> slotInfos = new ArrayList<>();
    for (Memslot m : vm.memslots()) {
      if (m.file() == null) {
        throw new GmemException(Errno.EOPNOTSUPP, "memslot " + m.slot() + " has no guest_memfd: only guest_memfd memory migrates");
      }
      int fi = files.indexOf(m.file());
      if (fi < 0) {
        files.add(m.file());
        fi = files.size() - 1;
      }
      slotInfos.add(new Handshake.SlotInfo(m.slot(), m.flags(), m.gpa(), m.size(), fi, m.offset()));
    }
    List<Handshake.FileInfo> fileInfos = new ArrayList<>();
    for (GuestMemFile f : files) {
      fileInfos.add(new Handshake.FileInfo(f.inode().flags(), f.size(), f.inode().shareabilityRanges(0, f.size() / Wire.PAGE)));
    }
    List<Handshake.VcpuState> states = new ArrayList<>();
    for (Vcpu c : vcpus) {
      states.add(new Handshake.VcpuState(c.id(), c.registers(), c.specialRegisters()));
    }
    return new Handshake(vm.type(), System.getProperty("os.arch"), fileInfos, slotInfos, states);
  }

  private long[] initialOrder() {
    long total = map.total();
    long[] o = new long[Math.toIntExact(total)];
    boolean[] placed = new boolean[o.length];
    int at = 0;
    for (long gfn : options.workingSet()) {
      long i = map.index(gfn);
      if (i >= 0 && !placed[(int) i]) {
        placed[(int) i] = true;
        o[at++] = gfn;
      }
    }
    for (int i = 0; i < o.length; i++) {
      if (!placed[i]) {
        o[at++] = map.gfn(i);
      }
    }
    return o;
  }

  private void connectFirst() throws IOException {
    long t0 = System.nanoTime();
    int timeout = (int) options.connectTimeout().toMillis();
    Frames main = Frames.connect(host, port, timeout);
    try {
      main.hello(Wire.KIND_MAIN, 0);
      main.handshake(handshake.encode());
      byte type = AnswerDeadline.readType(main, answerMillis(), "the handshake");
      if (type == Wire.REFUSE) {
        int errno = main.readInt();
        String why = main.readUtf(main.readInt());
        throw new GmemException(Errno.of(errno), "the destination refused the migration: " + why);
      }
      if (type != Wire.ACCEPT) {
        throw new Frames.ProtocolException("expected ACCEPT, got message 0x" + Integer.toHexString(type & 0xff));
      }
      session = main.readLong();
      downtimeNanos = System.nanoTime() - t0;
      Frames demand = Frames.connect(host, port, timeout);
      try {
        demand.hello(Wire.KIND_DEMAND, session);
      } catch (IOException e) {
        demand.close();
        throw e;
      }
      open(new SourceLink(this, main, demand));
    } catch (IOException | RuntimeException e) {
      main.close();
      throw e;
    }
  }

  /**
   * How long the destination may take to answer a handshake or a resume: a listener that accepts
   * the connection and never speaks (not gmem, or a frozen process) fails the call instead of
   * hanging it.
   */
  private long answerMillis() {
    return Math.max(options.connectTimeout().toMillis(), options.recoveryTimeout().toMillis());
  }

  /**
   * How long the destination may say nothing on an open link before the source treats the link as
   * broken: as long as it may take to answer, and never under 2 s, eight keepalives, so a busy
   * host's scheduling hiccup does not break a healthy link (which recovery would mend anyway).
   */
  long silenceMillis() {
    return Math.max(2000, answerMillis());
  }

  private void open(SourceLink l) {
    link = l;
    l.start();
  }

  // ---- results -------------------------------------------------------------------------------------

  /**
   * Waits for the destination's completion acknowledgement. Throws {@link GmemException} EIO when
   * the migration failed (destination lost and not back within the recovery timeout): the source
   * still owns every page and may resume the VM; ETIMEDOUT-like EAGAIN when {@code timeout} passed first.
   */
  public MigrationStats await(Duration timeout) {
    return Completion.await(done, timeout);
  }

  /** Whether the destination acknowledged completion (the destination owns the VM now). */
  public boolean completed() {
    return done.isDone() && !done.isCompletedExceptionally();
  }

  /** Whether the migration failed for good (the source owns the VM and may resume it). */
  public boolean failed() {
    return done.isCompletedExceptionally();
  }

  /** The session id the destination gave. */
  public long session() {
    return session;
  }

  /** A one-line progress report of the stream. */
  public String progress() {
    long total = map.total();
    long s = Math.min(total, streamed.get());
    double secs = (System.nanoTime() - started) / 1e9;
    return String.format("migrate (source): %d/%d pages streamed, %d demand requests served, %.1f MiB/s", s, total,
        demandRequests.get(), secs == 0 ? 0 : (streamBytes() + demandBytes()) / 1048576.0 / secs);
  }

  private long streamBytes() {
    SourceLink l = link;
    return streamBytes.get() + (l == null ? 0 : l.main.bytesOut() + l.main.bytesIn());
  }

  private long demandBytes() {
    SourceLink l = link;
    return demandBytes.get() + (l == null ? 0 : l.demand.bytesOut() + l.demand.bytesIn());
  }

  private MigrationStats stats() {
    return new MigrationStats(Duration.ofNanos(System.nanoTime() - started), Duration.ofNanos(downtimeNanos), map.total(),
        demandRequests.get(), streamBytes(), demandBytes(), reconnects, new LatencyHistogram());
  }

  void finish() {
    MigrationStats st = stats();
    if (done.complete(st)) {
      event("complete", st);
    }
    SourceLink l = link;
    if (l != null) {
      l.close();
    }
  }

  private void fail(String why, Throwable cause) {
    GmemException e = new GmemException(Errno.EIO, why, cause);
    MigrationStats st = stats();
    if (done.completeExceptionally(e)) {
      event("failed: " + why, st);
    }
    SourceLink l = link;
    if (l != null) {
      l.close();
    }
  }

  private static void event(String outcome, MigrationStats st) {
    MigrationEvent.Finished.commit("source", outcome, st);
  }

  /** Stops: a migration not yet acknowledged fails (the source keeps every page and may resume the VM). */
  @Override
  public void close() {
    if (!done.isDone()) {
      fail("migration cancelled by the source", null);
    }
    SourceLink l = link;
    if (l != null) {
      l.close();
    }
  }

  /** A MISSING list: at most every page of the VM, each in a memslot (a peer's count never sizes an allocation past that). */
  long[] readGfns(Frames f) throws IOException {
    int n = f.readInt();
    if (n < 0 || n > map.total()) {
      throw new Frames.ProtocolException("MISSING with " + n + " pages, the VM has " + map.total());
    }
    long[] g = new long[n];
    for (int i = 0; i < n; i++) {
      g[i] = f.readLong();
      if (map.index(g[i]) < 0) {
        throw new Frames.ProtocolException("MISSING names GFN 0x" + Long.toHexString(g[i]) + ", which lies in no memslot");
      }
    }
    return g;
  }

  // ---- postcopy recovery ------------------------------------------------------------------------------

  void linkDown(SourceLink l, Throwable cause) {
    synchronized (this) {
      if (link != l || l.closed) {
        return;
      }
      l.close();
      link = null;
    }
    Thread t = new Thread(() -> recover(cause), "gmem-migrate-recover");
    t.setDaemon(true);
    t.start();
  }

  private void recover(Throwable cause) {
    long deadline = System.nanoTime() + options.recoveryTimeout().toNanos();
    IOException last = null;
    while (!done.isDone()) {
      long left = deadline - System.nanoTime();
      if (left <= 0) {
        break;
      }
      int timeout = (int) Math.max(1, Math.min(options.connectTimeout().toMillis(), left / 1_000_000));
      Frames main = null;
      Frames demand = null;
      try {
        main = Frames.connect(host, port, timeout);
        main.hello(Wire.KIND_RESUME, session);
        byte type = AnswerDeadline.readType(main, answerMillis(), "the resume hello");
        if (type == Wire.COMPLETE) {
          main.close();
          finish(); // the acknowledgement was sent before the link broke
          return;
        }
        if (type == Wire.REFUSE) {
          int errno = main.readInt();
          String why = main.readUtf(main.readInt());
          main.close();
          fail("the destination refused to resume: " + why + " (errno " + Errno.of(errno) + ")", cause);
          return;
        }
        if (type != Wire.MISSING) {
          throw new Frames.ProtocolException("expected MISSING on resume, got 0x" + Integer.toHexString(type & 0xff));
        }
        long[] missing = readGfns(main);
        demand = Frames.connect(host, port, timeout);
        demand.hello(Wire.KIND_DEMAND, session);
        synchronized (orderLock) {
          order = missing;
          next = 0;
          endDue = true;
        }
        demandSent = new AtomicLongArray(demandSent.length());
        reconnects++;
        synchronized (this) {
          if (done.isDone()) {
            main.close();
            demand.close();
            return;
          }
          open(new SourceLink(this, main, demand));
        }
        return;
      } catch (IOException e) {
        last = e;
        if (main != null) {
          main.close();
        }
        if (demand != null) {
          demand.close();
        }
        try {
          Thread.sleep(10);
        } catch (InterruptedException ie) {
          Thread.currentThread().interrupt();
          break;
        }
      }
    }
    fail("the destination was lost before it acknowledged completion (" + cause + (last != null ? "; last reconnect: " + last : "")
        + "), no reconnect within " + options.recoveryTimeout() + ": the source still owns every page and may resume the VM", cause);
  }
}
