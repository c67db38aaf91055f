package dev.gmem.migrate;

import dev.gmem.migrate.wire.Frames;
import dev.gmem.migrate.wire.Wire;
import dev.gmem.userfault.uffd.Native;
import java.io.IOException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import java.util.zip.CRC32C;

/**
 * The destination's side of one link (a main and a demand connection) and its threads: the stream
 * reader, the demand reader and the request sender. A broken connection hands the link to the
 * destination's recovery.
 */
final class DestinationLink {
  private final MigrationDestination d;
  final Frames main;
  final Frames demand;
  /** Who writes requests on the demand connection now: the link's sender or a faulting thread. */
  final ReentrantLock sending = new ReentrantLock();
  volatile boolean closed;

  DestinationLink(MigrationDestination d, Frames main, Frames demand) {
    this.d = d;
    this.main = main;
    this.demand = demand;
  }

  void start() {
    thread("gmem-migrate-stream-rx", this::receiveStream);
    thread("gmem-migrate-demand-rx", this::receiveDemand);
    thread("gmem-migrate-demand-tx", this::sendRequests);
  }

  private void thread(String name, IoLoop body) {
    Thread t = new Thread(() -> {
      try {
        body.run();
      } catch (IOException | RuntimeException | InterruptedException e) {
        if (!closed) {
          d.linkDown(this, e);
        }
      }
    }, name);
    t.setDaemon(true);
    t.start();
  }

  private void receiveStream() throws IOException {
    Native.background(SourceLink.STREAM_NICE); // as the source's stream: demand threads preempt it
    CRC32C crc = new CRC32C();
    StreamRun run = new StreamRun(d);
    while (!closed) {
      if (!run.isEmpty() && (main.buffered() < StreamRun.MESSAGE || !d.urgent.isEmpty())) {
        run.install(); // before blocking on the socket, and at once when a fault may wait for one of them
      }
      if (!d.urgent.isEmpty()) {
        // A fault waits: leave the CPU to the demand channel for a moment (at most 1 ms per
        // message, so a request whose page only the stream will bring never stalls the stream).
        long until = System.nanoTime() + 1_000_000;
        while (!d.urgent.isEmpty() && !closed && System.nanoTime() < until) {
          Thread.yield();
        }
      }
      byte type = main.readType();
      if (type == Wire.PAGE_RUN) {
        run.addRun(main);
        run.install(); // whole: nothing more joins it
        if (System.nanoTime() - d.lastDemandNanos < SourceLink.DEMAND_QUIET_NANOS) {
          // While the guest faults, as the source's stream after each run: a woken demand thread
          // gets the core now, not after a slice. A bulk transfer with no faults skips the
          // system call (one per run: ~5% of this thread's CPU per GiB).
          Thread.yield();
        }
      } else if (type == Wire.PAGE_DATA) {
        run.add(main);
      } else if (type == Wire.PAGE_ZERO) {
        run.install(); // in stream order
        d.receiver.receive(main, true, crc);
      } else if (type == Wire.END) {
        run.install();
        main.readLong();
        long[] left = d.missing();
        if (left.length == 0) {
          d.endPostcopy(); // before the acknowledgement: completed() means the flag is gone
          main.complete();
          MigrationStats st = d.stats();
          if (d.done.complete(st)) {
            d.finished("complete");
          }
        } else {
          main.missing(left);
        }
      } else {
        throw new Frames.ProtocolException("unexpected message 0x" + Integer.toHexString(type & 0xff) + " on the stream");
      }
    }
  }

  private void receiveDemand() throws IOException {
    CRC32C crc = new CRC32C();
    while (!closed) {
      byte type = demand.readType();
      if (type != Wire.PAGE_DATA && type != Wire.PAGE_ZERO) {
        throw new Frames.ProtocolException("unexpected message 0x" + Integer.toHexString(type & 0xff) + " on the demand channel");
      }
      d.receiver.receive(demand, type == Wire.PAGE_ZERO, crc);
    }
  }

  /** The queued requests, and a KEEPALIVE every {@link Wire#KEEPALIVE_MILLIS}, whatever else goes. */
  private void sendRequests() throws IOException, InterruptedException {
    long keepalive = TimeUnit.MILLISECONDS.toNanos(Wire.KEEPALIVE_MILLIS);
    long lastKeepalive = System.nanoTime() - keepalive;
    while (!closed) {
      if (System.nanoTime() - lastKeepalive >= keepalive) {
        sending.lock();
        try {
          demand.keepalive();
        } finally {
          sending.unlock();
        }
        lastKeepalive = System.nanoTime();
      }
      Long g = d.demandQueue.poll(50, TimeUnit.MILLISECONDS);
      if (g == null) {
        continue;
      }
      sending.lock();
      try {
        if (d.urgent.containsKey(g) && d.pages.missing(g)) {
          demand.request(g);
        }
        if (d.demandQueue.isEmpty()) {
          demand.flush();
        }
      } finally {
        sending.unlock();
      }
    }
  }

  synchronized void close() {
    if (!closed) {
      closed = true;
      main.close();
      demand.close();
      d.streamBytes.addAndGet(main.bytesIn() + main.bytesOut());
      d.demandBytes.addAndGet(demand.bytesIn() + demand.bytesOut());
    }
  }
}
