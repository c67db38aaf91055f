package dev.gmem.userfault;

import java.util.concurrent.atomic.AtomicLongArray;

/**
 * A reference count split per thread stripe, after the kernel's {@code percpu_ref}: taking and
 * dropping a reference writes only the caller's own stripe (a cache line of its own), so threads
 * on different cores never bounce one line between them, where a shared lock word (a
 * {@code StampedLock} read stamp) is written by every reader. {@link #kill} is the slow side: it
 * makes every later {@link #tryGetLive} fail and waits until the references taken before it are
 * dropped.
 *
 * <p>Why it is safe: a reader increments its stripe and then reads {@link #dead}; the killer writes
 * {@link #dead} and then reads every stripe. All four are volatile accesses, totally ordered, so
 * either the reader sees the kill (and backs out) or the killer sees the reader's count (and waits).
 */
final class PercpuRef {
  /** Stripes: a power of two, enough that the few threads of one VM rarely share one. */
  private static final int STRIPES = 16;
  /** Longs per stripe: 128 bytes, so no two stripes share a cache line or its prefetched pair. */
  private static final int PAD = 16;

  private final AtomicLongArray counts = new AtomicLongArray(STRIPES * PAD);
  private volatile boolean dead;

  /** A reference while live: the index to give {@link #put}; -1 once killed (nothing taken). */
  int tryGetLive() {
    int i = (int) (Thread.currentThread().getId() & (STRIPES - 1)) * PAD;
    counts.getAndIncrement(i);
    if (dead) {
      counts.getAndDecrement(i);
      return -1;
    }
    return i;
  }

  /** Drops the reference {@link #tryGetLive} returned. */
  void put(int ref) {
    counts.getAndDecrement(ref);
  }

  /**
   * Kills the reference: every later {@link #tryGetLive} fails. Returns once every reference taken
   * before is dropped — they are held across one access, so it waits briefly. Never call it while
   * holding a reference. Whether this call killed it (false: it was dead already).
   */
  synchronized boolean kill() {
    if (dead) {
      return false;
    }
    dead = true;
    for (int i = 0; i < STRIPES * PAD; i += PAD) {
      while (counts.get(i) != 0) {
        Thread.yield();
      }
    }
    return true;
  }

  boolean isDead() {
    return dead;
  }
}
