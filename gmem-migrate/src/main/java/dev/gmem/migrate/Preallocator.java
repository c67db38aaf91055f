package dev.gmem.migrate;

import dev.gmem.api.GmemException;
import dev.gmem.api.GuestMemFile;
import dev.gmem.migrate.wire.Handshake;
import dev.gmem.userfault.uffd.Native;
import java.util.List;
import java.util.concurrent.locks.LockSupport;
import java.util.function.LongSupplier;

/**
 * Allocates the destination's memory ahead of the stream, on a thread of its own: {@code fallocate}
 * of each memslot's file range, a chunk at a time, in the stream's default order. Every page of
 * those ranges is going to arrive (data or a zero page), so this allocates nothing the migration
 * would not; it takes the kernel's page allocation and zeroing, and gmem's folio bookkeeping, off
 * the stream reader, whose single thread is the transfer's critical path (half of its CPU was the
 * guest_memfd page allocation under its writes), onto the core the source's sender leaves idle.
 *
 * <p>It changes no page's content or state: an allocated page is still missing (its userfault bit
 * stays set) until its data is installed. {@code fallocate} takes the inode's invalidate lock
 * shared, as installs and faults do, but it runs at the stream's nice value and shares the inode's
 * other structures with a demand install, so a preempted allocation could keep a woken demand
 * thread waiting: it waits while the guest faults ({@link #awaitDemandQuiet}). A failed allocation
 * (the file closed, memory short) ends it: the reader then allocates as it installs, as without it.
 */
final class Preallocator {
  /** Per call: 64 pages, a short hold of the file's locks (demand installs never queue long behind it). */
  static final long CHUNK = 256 << 10;

  private final Thread thread;
  private volatile boolean stopped;
  /** Bytes allocated so far (written by its thread only). */
  private volatile long allocated;

  private final LongSupplier lastDemandNanos;

  private Preallocator(List<Handshake.SlotInfo> slots, List<GuestMemFile> files, LongSupplier lastDemandNanos) {
    this.lastDemandNanos = lastDemandNanos;
    thread = new Thread(() -> run(slots, files), "gmem-migrate-prealloc");
    thread.setDaemon(true);
  }

  /** {@code lastDemandNanos}: when the guest last asked for a page on the demand channel ({@link System#nanoTime}). */
  static Preallocator start(List<Handshake.SlotInfo> slots, List<GuestMemFile> files, LongSupplier lastDemandNanos) {
    Preallocator p = new Preallocator(slots, files, lastDemandNanos);
    p.thread.start();
    return p;
  }

  private void run(List<Handshake.SlotInfo> slots, List<GuestMemFile> files) {
    Native.background(SourceLink.STREAM_NICE);
    try {
      for (Handshake.SlotInfo s : slots) {
        GuestMemFile f = files.get(s.file());
        for (long at = 0; at < s.size() && !stopped; at += CHUNK) {
          awaitDemandQuiet();
          long len = Math.min(CHUNK, s.size() - at);
          f.allocate(s.offset() + at, len);
          allocated += len;
        }
      }
    } catch (GmemException | IllegalStateException e) {
      // closed under it, or memory short: the stream allocates as it installs
    }
  }

  /**
   * While the guest faults (a demand request within {@link SourceLink#DEMAND_QUIET_NANOS}), it
   * waits: a demand install shares the inode's locks with an allocation, and at this thread's nice
   * value a preempted holder would keep a woken demand thread waiting (seen as a saturated-link
   * p99 of 512 µs against 150–200 µs without it). It goes on once the faults stop.
   */
  private void awaitDemandQuiet() {
    while (!stopped && System.nanoTime() - lastDemandNanos.getAsLong() < SourceLink.DEMAND_QUIET_NANOS) {
      LockSupport.parkNanos(SourceLink.DEMAND_QUIET_NANOS / 4);
    }
  }

  /** Stops it and waits for its allocation in flight: none runs once this returns. */
  void stop() {
    stopped = true;
    try {
      thread.join();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** Waits for it to finish, at most {@code millis}; the bytes it allocated. */
  long await(long millis) throws InterruptedException {
    thread.join(millis);
    return allocated;
  }
}
