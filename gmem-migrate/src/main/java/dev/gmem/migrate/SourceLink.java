package dev.gmem.migrate;

import dev.gmem.migrate.wire.Frames;
import dev.gmem.migrate.wire.Wire;
import java.io.IOException;

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

  SourceLink(MigrationSource s, Frames main, Frames demand) {
    this.s = s;
    this.main = main;
    this.demand = demand;
  }

  void start() {
    thread("gmem-migrate-stream", this::stream);
    thread("gmem-migrate-main-rx", this::receive);
    thread("gmem-migrate-demand", this::serveDemand);
  }

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
    PageBuffer b = new PageBuffer();
    ReadAhead ahead = new ReadAhead(s.reader, s.vm, s.slots);
    long cap = s.options.maxStreamBytesPerSecond();
    long t0 = System.nanoTime();
    long sentBytes = 0;
    while (!closed && !s.done.isDone() && !s.options.background()) {
      synchronized (s.orderLock) {
        s.orderLock.wait(50);
      }
    }
    while (!closed && !s.done.isDone()) {
      long gfn = -1;
      boolean sendEnd = false;
      long count = 0;
      synchronized (s.orderLock) {
        if (s.next < s.order.length) {
          gfn = s.order[s.next++];
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
      long i = s.map.index(gfn);
      if ((s.demandSent.get((int) (i >>> 6)) & (1L << i)) != 0) {
        continue; // served on the demand channel of this link
      }
      if (s.demandBusy.get() > 0) {
        main.flush(); // what is buffered goes; then the CPU is the demand thread's until it answered
        while (s.demandBusy.get() > 0 && !closed) {
          Thread.onSpinWait();
          Thread.yield();
        }
      }
      boolean data = ahead.send(main, gfn, b);
      s.streamed.incrementAndGet();
      if (cap > 0) {
        sentBytes += data ? Wire.PAGE_MESSAGE_BYTES : 9;
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

  /** Urgent requests, each answered at once on the demand connection. */
  private void serveDemand() throws IOException {
    PageBuffer b = new PageBuffer();
    while (!closed) {
      byte type = demand.readType();
      if (type != Wire.REQUEST) {
        throw new Frames.ProtocolException("unexpected message 0x" + Integer.toHexString(type & 0xff) + " on the demand connection");
      }
      long gfn = demand.readLong();
      long i = s.map.index(gfn);
      if (i < 0) {
        throw new Frames.ProtocolException("request for GFN 0x" + Long.toHexString(gfn) + ", which lies in no memslot");
      }
      s.demandRequests.incrementAndGet();
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
