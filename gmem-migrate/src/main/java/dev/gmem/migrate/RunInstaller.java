package dev.gmem.migrate;

import dev.gmem.migrate.wire.Wire;
import dev.gmem.userfault.uffd.Native;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * The stream's second stage at the destination: installs the runs the stream reader read and
 * checked, on a thread of its own, while the reader goes on with the socket and the next run's
 * CRC32Cs. One thread reading, checking, copying into guest memory and doing gmem's fault
 * bookkeeping was the transfer's critical path, with a core the source's sender leaves half idle;
 * split in two stages each takes a core's share of it.
 *
 * <p>Only checked runs get here: a run with a bad page is cut before it by the reader, so what
 * this installs arrived intact; {@link PageReceiver#installRun} still installs only pages that are
 * missing, under their stripes, as the reader did. The run buffers go round a small ring: the
 * reader takes a free one ({@link #take}), fills it, {@link #submit}s it, and this thread gives it
 * back once installed — at most {@link #DEPTH} runs are between the socket and guest memory.
 * {@link #drain} waits until every submitted run is in (before END's completeness check). A run
 * queued when the link breaks is still installed: it is intact, and what goes in meanwhile is only
 * re-sent after recovery, where duplicates are harmless.
 */
final class RunInstaller {
  /**
   * Runs in flight (2 MiB): one being filled, one being installed, and slack for the two threads'
   * scheduling jitter on a busy host (the socket's buffer absorbs the rest). Made as needed.
   */
  static final int DEPTH = 8;

  private record Run(long first, int count, ByteBuffer pages) {}

  /** Where checked runs go: {@link PageReceiver#installRun} (pages still missing only, under their stripes). */
  @FunctionalInterface
  interface Sink {
    void install(long first, int count, ByteBuffer pages);
  }

  private final Sink sink;
  private final ArrayBlockingQueue<ByteBuffer> free = new ArrayBlockingQueue<>(DEPTH);
  private final ArrayBlockingQueue<Run> queued = new ArrayBlockingQueue<>(DEPTH);
  private final Thread thread;
  /** Run buffers made so far (the reader's thread only). */
  private int allocated;
  /** Runs submitted and not yet installed (both threads; guarded by this). */
  private int pending;
  private volatile boolean stopping;
  /** What ended an install other than its own reported failure: the reader rethrows it. */
  private volatile RuntimeException failure;

  RunInstaller(Sink sink) {
    this.sink = sink;
    thread = new Thread(this::run, "gmem-migrate-install");
    thread.setDaemon(true);
  }

  void start() {
    thread.start();
  }

  /** A free run buffer (cleared), waiting while all are in flight. */
  ByteBuffer take() throws IOException {
    try {
      ByteBuffer b = free.poll();
      if (b == null && allocated < DEPTH) {
        allocated++; // only the reader takes: a short migration never allocates the whole ring
        b = ByteBuffer.allocateDirect(StreamRun.PAGES * Wire.PAGE);
      }
      if (b != null) {
        check();
        return b.clear();
      }
      while (true) {
        check();
        b = free.poll(50, TimeUnit.MILLISECONDS);
        if (b != null) {
          return b.clear();
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException("interrupted waiting for a run buffer");
    }
  }

  /** Gives back a buffer that was taken and not submitted. */
  void giveBack(ByteBuffer b) {
    free.offer(b);
  }

  /** Queues {@code count} checked pages from GFN {@code first} (consecutive, one memslot), held from {@code pages}' start. */
  void submit(long first, int count, ByteBuffer pages) throws IOException {
    synchronized (this) {
      pending++;
    }
    if (!queued.offer(new Run(first, count, pages))) { // DEPTH buffers, DEPTH places: never full
      throw new IllegalStateException("more runs queued than buffers");
    }
    check();
  }

  /** Waits until every submitted run is installed; rethrows what ended one. */
  void drain() throws IOException {
    try {
      synchronized (this) {
        while (pending > 0) {
          wait(50);
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException("interrupted waiting for the installs");
    }
    check();
  }

  /** Installs what is queued, then ends; {@code millis}: how long to wait for that (0: not at all). */
  void stop(long millis) {
    stopping = true;
    if (millis <= 0) {
      return; // Thread.join(0) would wait for ever
    }
    try {
      thread.join(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private void check() {
    RuntimeException e = failure;
    if (e != null) {
      throw e;
    }
  }

  private void run() {
    Native.background(SourceLink.STREAM_NICE); // as the reader: demand threads preempt it
    try {
      while (true) {
        Run r = queued.poll(50, TimeUnit.MILLISECONDS);
        if (r == null) {
          if (stopping) {
            return;
          }
          continue;
        }
        try {
          if (failure == null) {
            sink.install(r.first(), r.count(), r.pages().duplicate().position(0).limit(r.count() * Wire.PAGE));
          }
        } catch (RuntimeException e) {
          failure = e; // the reader breaks the link with it; later runs are dropped (re-sent after recovery)
        } finally {
          free.offer(r.pages());
          synchronized (this) {
            pending--;
            notifyAll();
          }
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
