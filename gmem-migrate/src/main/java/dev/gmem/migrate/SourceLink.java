package dev.gmem.migrate;

import dev.gmem.migrate.wire.Frames;
import dev.gmem.migrate.wire.Wire;
import dev.gmem.userfault.uffd.Native;
import java.io.IOException;
import java.net.SocketTimeoutException;
import java.util.concurrent.TimeUnit;

/**
 * The source's side of one link (a main and a demand connection) and its threads: the background
 * stream sender, the reader of the destination's replies and the demand server. A broken
 * connection hands the link to the source's recovery.
 */
final class SourceLink {
  private final MigrationSource s;
  final Frames main;
  final Frames demand;
  volatile boolean closed;
  /** When the destination was last heard from ({@link System#nanoTime}); it sends a KEEPALIVE at least every {@link Wire#KEEPALIVE_MILLIS}. */
  private volatile long heard = System.nanoTime();

  SourceLink(MigrationSource s, Frames main, Frames demand) {
    this.s = s;
    this.main = main;
    this.demand = demand;
  }

  void start() {
    thread("gmem-migrate-stream", this::stream);
    thread("gmem-migrate-main-rx", this::receive);
    thread("gmem-migrate-demand", this::serveDemand);
    thread("gmem-migrate-watchdog", this::watch);
  }

  /** How many nice steps below the process's the stream threads run, on both sides (demand threads keep the process's). */
  static final int STREAM_NICE = 10;
  /** The stream's run length while demand requests come (see {@link #stream}). */
  static final int DEMAND_RUN = 16;
  /** How long after the last demand request the stream keeps its runs short. */
  static final long DEMAND_QUIET_NANOS = 20_000_000;

  private void thread(String name, IoLoop body) {
    Thread t = new Thread(() -> {
      try {
        body.run();
      } catch (IOException | RuntimeException e) {
        down(e);
      } catch (InterruptedException e) {
        down(e);
      }
    }, name);
    t.setDaemon(true);
    t.start();
  }

  /** The background stream: the current order, then END, then waits for the next order or completion. */
  private void stream() throws IOException, InterruptedException {
    // Background work at a lower priority: where the stream keeps every core busy, a woken demand
    // thread (the process's nice) preempts it at once instead of waiting for its scheduler slice to end.
    Native.background(STREAM_NICE);
    PageBuffer b = new PageBuffer();
    ReadAhead ahead = new ReadAhead(s.reader, s.vm, s.slots);
    long cap = s.options.maxStreamBytesPerSecond();
    long t0 = System.nanoTime();
    long sentBytes = 0;
    // Under a cap, runs no longer than ~10 ms of its budget, so the pacing below stays fine-grained.
    int maxRun = cap > 0 ? (int) Math.max(1, Math.min(Wire.MAX_RUN, cap / 100 / Wire.PAGE)) : Wire.MAX_RUN;
    while (!closed && !s.done.isDone() && !s.options.background()) {
      synchronized (s.orderLock) {
        s.orderLock.wait(50);
      }
    }
    java.util.function.LongPredicate demanded = g -> {
      long i = s.map.index(g);
      return (s.demandSent.get((int) (i >>> 6)) & (1L << i)) != 0; // served on the demand channel of this link
    };
    while (!closed && !s.done.isDone()) {
      long first = -1;
      int n = 0;
      long[] taken = null;
      boolean sendEnd = false;
      long count = 0;
      synchronized (s.orderLock) {
        if (s.next < s.order.length) {
          // the longest run of consecutive GFNs the order has next, up to a run message's worth
          first = s.order[s.next];
          n = 1;
          // While the guest is faulting, short runs: a demand page waits behind at most one run
          // (on the wire, and for its install stripes at the destination), and a run of 16 pages
          // takes tens of microseconds where one of 64 took hundreds. Full runs again once the
          // faults stop: the bulk transfer keeps its large messages.
          int limit = System.nanoTime() - s.lastDemandNanos < DEMAND_QUIET_NANOS ? Math.min(maxRun, DEMAND_RUN) : maxRun;
          while (n < limit && s.next + n < s.order.length && s.order[s.next + n] == first + n) {
            n++;
          }
          s.next += n;
          taken = s.order;
        } else if (s.endDue) {
          s.endDue = false;
          sendEnd = true;
          count = s.order.length;
        } else {
          s.orderLock.wait(50);
          continue;
        }
      }
      if (sendEnd) {
        main.end(count);
        continue;
      }
      if (s.demandBusy.get() > 0) {
        main.flush(); // what is buffered goes; then the CPU is the demand thread's until it answered
        while (s.demandBusy.get() > 0 && !closed) {
          Thread.onSpinWait();
          Thread.yield();
        }
      }
      ReadAhead.Sent sent = ahead.send(main, first, n, demanded, b);
      synchronized (s.orderLock) {
        if (sent.pages() < n && s.order == taken) {
          s.next -= n - sent.pages(); // the rest comes next, unless a new order (MISSING) replaced this one meanwhile
        }
      }
      s.streamed.addAndGet(sent.pages());
      // A run takes a fraction of a millisecond; a scheduler slice is milliseconds. Where the
      // stream keeps every core busy, a woken demand thread would otherwise wait for the slice to
      // end (EEVDF protects the running task): offer the core after every run instead.
      Thread.yield();
      if (cap > 0) {
        sentBytes += sent.bytes();
        long early = sentBytes * 1_000_000_000L / cap - (System.nanoTime() - t0);
        if (early > 1_000_000) {
          main.flush();
          Thread.sleep(early / 1_000_000);
        }
      }
    }
  }

  /** The destination's replies on the main connection: the next order (MISSING) or COMPLETE. */
  private void receive() throws IOException {
    while (!closed) {
      byte type = main.readType();
      heard = System.nanoTime();
      if (type == Wire.MISSING) {
        long[] gfns = s.readGfns(main);
        synchronized (s.orderLock) {
          s.order = gfns;
          s.next = 0;
          s.endDue = true;
          s.orderLock.notifyAll();
        }
      } else if (type == Wire.COMPLETE) {
        s.finish();
        return;
      } else {
        throw new Frames.ProtocolException("unexpected message 0x" + Integer.toHexString(type & 0xff) + " on the main connection");
      }
    }
  }

  /**
   * Breaks the link once the destination has said nothing for {@link MigrationSource#silenceMillis}:
   * a frozen process, or a host lost without a FIN, closes no connection, so without this the
   * stream would wait for ever for room in a full socket buffer, or the source for a COMPLETE.
   * Recovery then reconnects, or fails the migration with the source owning every page.
   */
  private void watch() throws IOException, InterruptedException {
    long limit = TimeUnit.MILLISECONDS.toNanos(s.silenceMillis());
    while (!closed && !s.done.isDone()) {
      Thread.sleep(Wire.KEEPALIVE_MILLIS / 2);
      long quiet = System.nanoTime() - heard;
      if (quiet > limit) {
        throw new SocketTimeoutException("the destination said nothing for " + quiet / 1_000_000 + " ms (it sends a keepalive every "
            + Wire.KEEPALIVE_MILLIS + " ms): frozen, or its host lost without closing the connection");
      }
    }
  }

  /** Urgent requests, each answered at once on the demand connection; the destination's keepalives. */
  private void serveDemand() throws IOException {
    PageBuffer b = new PageBuffer();
    while (!closed) {
      byte type = demand.readType();
      heard = System.nanoTime();
      if (type == Wire.KEEPALIVE) {
        continue;
      }
      if (type != Wire.REQUEST) {
        throw new Frames.ProtocolException("unexpected message 0x" + Integer.toHexString(type & 0xff) + " on the demand connection");
      }
      long gfn = demand.readLong();
      long i = s.map.index(gfn);
      if (i < 0) {
        throw new Frames.ProtocolException("request for GFN 0x" + Long.toHexString(gfn) + ", which lies in no memslot");
      }
      s.demandRequests.incrementAndGet();
      s.lastDemandNanos = System.nanoTime();
      s.demandBusy.incrementAndGet();
      try {
        s.reader.send(demand, gfn, b);
        demand.flush();
      } finally {
        s.demandBusy.decrementAndGet();
      }
      s.demandSent.getAndAccumulate((int) (i >>> 6), 1L << i, (x, y) -> x | y);
    }
  }

  private void down(Throwable cause) {
    if (closed || s.done.isDone()) {
      close();
      return;
    }
    s.linkDown(this, cause);
  }

  synchronized void close() {
    if (!closed) {
      closed = true;
      main.close();
      demand.close();
      s.streamBytes.addAndGet(main.bytesIn() + main.bytesOut());
      s.demandBytes.addAndGet(demand.bytesIn() + demand.bytesOut());
      synchronized (s.orderLock) {
        s.orderLock.notifyAll();
      }
    }
  }
}
