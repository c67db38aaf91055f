package dev.gmem.arch.tdx.module;

import java.security.MessageDigest;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The measurement engine: one thread that runs the SHA-384 updates of MRTDs while the thread
 * that populates goes on to allocate, copy and map the next page. The TDX module hashes inside
 * the SEAMCALL; gmem models the module in software, so the same updates in the same order can
 * run beside the populate instead of inside it, which on two or more CPUs hides most of the
 * rest of the per-page path behind the hashing (the hashing is the larger part).
 *
 * <p>A job is a run of whole 128-byte blocks already laid out by {@link Mrtd} in one of the
 * engine's {@link #RING} buffers, with the digest to feed them to. Producers (the TDs of one
 * provider, each under its own monitor) claim and publish slots in order under one lock, the
 * jobs run in that order, one at a time (the consumer lock), so every TD's updates keep their
 * order. A producer that must wait — the ring is full, or it needs its digest again
 * ({@link #awaitDone}) — runs the oldest jobs itself when the engine is not running one (it is
 * parked, or not scheduled on a loaded machine): the engine only ever takes work off the
 * populating thread, it never makes it wait for a thread that does not run. {@code completed} is
 * volatile and written after the job's update, so whoever sees a job completed sees its digest
 * state. The thread is a daemon started on demand and ends after {@link #IDLE_NANOS} without
 * work, so a runtime that is dropped leaves no thread behind for long.
 */
final class MeasurementEngine {
  /** Jobs in flight: enough to ride out a page fault or two of the populating thread. */
  static final int RING = 16;
  /** The largest job: one measured page (1 PAGE.ADD block, 16 × (header + 2 chunk blocks)). */
  static final int JOB_BYTES = Mrtd.PAGE_JOB_BYTES;
  /** How long the engine spins for the next job before it parks (pages come every few µs). */
  private static final long SPIN_NANOS = TimeUnit.MICROSECONDS.toNanos(50);
  private static final long IDLE_NANOS = TimeUnit.SECONDS.toNanos(1);
  /** A job that runs this much longer than the ~15 µs it takes means the engine lost its CPU. */
  private static final long STALL_NANOS = TimeUnit.MICROSECONDS.toNanos(100);
  private static final long WAITER_PARK_NANOS = TimeUnit.MICROSECONDS.toNanos(200);

  private final byte[][] buffers = new byte[RING][JOB_BYTES];
  private final MessageDigest[] targets = new MessageDigest[RING];
  private final int[] lengths = new int[RING];
  /** Producers: claim and publish in order. */
  private final ReentrantLock lock = new ReentrantLock();
  /** Consumers (the engine, or a waiting producer): one job at a time, in order. */
  private final ReentrantLock consumer = new ReentrantLock();
  /** Jobs published; written under {@link #lock}. */
  private volatile long published;
  /** Jobs finished; written under {@link #consumer}. */
  private volatile long completed;
  /** Producers' waits that outlasted {@link #STALL_NANOS} (racy increments: a heuristic count). */
  private volatile long stalls;
  /** A producer parked in {@link #awaitDone}, unparked after each job; null when none. */
  private volatile Thread waiter;
  /** Whether the engine is parked (or about to be): a publisher then unparks it. */
  private volatile boolean sleeping;
  /** The engine thread, or null when none runs; changed under {@link #lock}. */
  private Thread thread;
  private int claimed = -1;

  /** Whether the host has a CPU for the engine now ({@link CpuPressure}). */
  private final BooleanSupplier spareCpu;

  MeasurementEngine(BooleanSupplier spareCpu) {
    this.spareCpu = spareCpu;
    for (byte[] b : buffers) {
      Mrtd.template(b);
    }
  }

  /** Whether a run of jobs should come here now: the host has a CPU to spare for the engine. */
  boolean worthIt() {
    return spareCpu.getAsBoolean();
  }

  /**
   * Gets the engine thread going (started, or unparked) ahead of a run of jobs, so that waking it
   * — tens of µs on a virtualised host — overlaps the first page's allocation and copy.
   */
  void wakeUp() {
    Thread engine;
    lock.lock();
    try {
      engine = start();
    } finally {
      lock.unlock();
    }
    if (sleeping) {
      LockSupport.unpark(engine);
    }
  }

  /** The engine thread, started if none runs; under {@link #lock}. */
  private Thread start() {
    if (thread == null) {
      thread = new Thread(this::run, "gmem-tdx-measure");
      thread.setDaemon(true);
      thread.start();
    }
    return thread;
  }

  /**
   * Claims the next slot for {@code target} and returns its buffer, laid out as
   * {@link Mrtd#template} left it apart from what earlier jobs wrote at the GPA and chunk
   * offsets; waits while the ring is full. Must be followed by {@link #publish}, by the same
   * thread.
   */
  byte[] claim(MessageDigest target) {
    lock.lock();
    long seq = published;
    if (seq - completed >= RING) {
      awaitDone(seq - RING + 1);
    }
    int at = (int) seq & (RING - 1);
    claimed = at;
    targets[at] = target;
    return buffers[at];
  }

  /** Publishes the claimed job ({@code length} bytes, whole blocks); returns the sequence number {@link #awaitDone} waits for. */
  long publish(int length) {
    int at = claimed;
    claimed = -1;
    lengths[at] = length;
    long done;
    Thread engine;
    try {
      done = published + 1;
      published = done; // volatile: the slot's contents happen-before the engine's read
      engine = start();
    } finally {
      lock.unlock();
    }
    if (sleeping) {
      LockSupport.unpark(engine);
    }
    return done;
  }

  /** Returns once every job up to sequence number {@code seq} has run, running them here if the engine is not. */
  void awaitDone(long seq) {
    long spinningSince = 0;
    for (int spins = 0; completed < seq; spins++) {
      if (runJobs(seq)) {
        spinningSince = 0;
        continue;
      }
      if (spinningSince == 0) {
        spinningSince = System.nanoTime();
      }
      if (System.nanoTime() - spinningSince < STALL_NANOS) {
        Thread.onSpinWait(); // the engine is running a job: ~15 µs
        continue;
      }
      // Longer: the engine lost its CPU mid-job (a loaded host). Spinning would take the CPU it
      // needs; sleep until it completes a job (bounded: a second waiter may have taken the slot).
      stalls++;
      waiter = Thread.currentThread();
      if (completed < seq) {
        LockSupport.parkNanos(this, WAITER_PARK_NANOS);
      }
      waiter = null;
    }
  }

  /**
   * How often a producer found the engine stalled mid-job (it had lost its CPU): a producer that
   * sees this grow goes back to hashing inline, since on a host without a spare CPU the second
   * thread only adds its wake-ups and preemptions to the populate.
   */
  long stalls() {
    return stalls;
  }

  /** Runs published jobs in order up to {@code upTo} unless another consumer is running; whether it ran. */
  private boolean runJobs(long upTo) {
    if (!consumer.tryLock()) {
      return false;
    }
    try {
      for (long done = completed; done < published && done < upTo; ) {
        int at = (int) done & (RING - 1);
        targets[at].update(buffers[at], 0, lengths[at]);
        targets[at] = null;
        completed = ++done;
        Thread w = waiter;
        if (w != null) {
          LockSupport.unpark(w);
        }
      }
      return true;
    } finally {
      consumer.unlock();
    }
  }

  private void run() {
    long idleSince = System.nanoTime();
    while (true) {
      if (completed < published) {
        if (!runJobs(Long.MAX_VALUE)) {
          Thread.onSpinWait(); // a waiting producer is running one
        }
        idleSince = System.nanoTime();
        continue;
      }
      long idle = System.nanoTime() - idleSince;
      if (idle < SPIN_NANOS) {
        Thread.onSpinWait();
        continue;
      }
      if (idle >= IDLE_NANOS) {
        lock.lock();
        try {
          if (completed == published) {
            thread = null;
            return;
          }
        } finally {
          lock.unlock();
        }
        continue;
      }
      sleeping = true;
      if (completed == published) { // re-checked after the flag: a publisher sees one or the other
        LockSupport.parkNanos(this, IDLE_NANOS);
      }
      sleeping = false;
    }
  }
}
