package dev.gmem.userfault;

import dev.gmem.api.Api;
import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.spi.HostMemory;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.AtomicReferenceArray;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The userfault bitmap of one memslot ({@code kvm_userspace_memory_region2.userfault_bitmap}): an
 * array of 64-bit words, bit {@code i} standing for the slot's page {@code i} (gfn
 * {@code base_gfn + i}). A set bit makes a vCPU access to a page not yet mapped exit with
 * {@code KVM_MEMORY_EXIT_FLAG_USERFAULT}, and a host access wait for the page. The VMM owns it:
 * it lives off-heap in a memfd ({@link #fd()}) that another process — a page server, as
 * Firecracker's UFFD handler — may map and clear bits in directly.
 *
 * <p>Resolve a fault by installing the data first and then {@linkplain #clear clearing} the bit
 * with a store-release; gmem reads bits with a load-acquire, so the data is visible to whoever sees
 * the bit clear (the ordering the v3 documentation asks for, with Oliver Upton's acquire on the
 * kernel side). Clearing wakes host accesses waiting in this process at once; a clear made by
 * another process is seen within a millisecond.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public final class UserfaultBitmap implements AutoCloseable {
  private static final VarHandle WORDS = MethodHandles.byteBufferViewVarHandle(long[].class, ByteOrder.nativeOrder());
  /** How long a waiter sleeps before it looks again for a clear made by another process. */
  private static final long POLL_NANOS = TimeUnit.MILLISECONDS.toNanos(1);

  private final HostMemory.MemoryFile file;
  private final HostMemory.Mapping mapping;
  private final ByteBuffer words;
  private final long pages;
  private final ReentrantLock lock = new ReentrantLock();
  private final Condition cleared = lock.newCondition();
  private final AtomicInteger waiters = new AtomicInteger();
  /**
   * Threads waiting for one page each ({@link #waitPage}): a clear unparks only the waiters of the
   * pages it cleared. One condition for the whole bitmap woke every waiter at every clear — under
   * a post-copy stream that is every run installed, each waking the faulting threads for nothing
   * and handing them a lock the (lower-priority) stream thread might hold. A waiter that finds no
   * free slot waits on {@link #cleared} instead.
   */
  private static final int WAIT_SLOTS = 64;
  private final AtomicReferenceArray<Thread> waitThread = new AtomicReferenceArray<>(WAIT_SLOTS);
  private final AtomicLongArray waitPage = new AtomicLongArray(WAIT_SLOTS);
  /**
   * Every read or write of the words holds a reference; {@link #close} kills it before it unmaps,
   * so no thread is between its open check and its access then. Per-thread stripes, not a shared
   * lock word: every vCPU thread takes it several times per fault, and a {@code StampedLock}'s read
   * stamps (a CAS on one word each way) bounced that word between the cores on every fault.
   */
  private final PercpuRef life = new PercpuRef();

  UserfaultBitmap(HostMemory host, long pages) {
    this.pages = pages;
    long bytes = Math.max(4096, ((((pages + 63) >>> 6) << 3) + 4095) & ~4095L);
    if (bytes > Integer.MAX_VALUE) {
      throw new IllegalArgumentException("bitmap of " + pages + " pages too large");
    }
    HostMemory.MemoryFile f = host.createMemfd("gmem-userfault-bitmap", 1 /* MFD_CLOEXEC */, bytes);
    try {
      this.mapping = f.map(0, bytes, 3 /* PROT_READ|PROT_WRITE */, 0);
    } catch (RuntimeException e) {
      f.close();
      throw e;
    }
    this.file = f;
    this.words = mapping.buffer(0, (int) bytes).order(ByteOrder.nativeOrder());
  }

  /** Pages (bits) the bitmap covers: the memslot's page count. */
  public long pages() {
    return pages;
  }

  /** The memfd holding the bitmap, to map in another process (the bitmap's own fd: do not close it). EBADF once closed. */
  public int fd() {
    checkOpen();
    return file.fd();
  }

  /** The bitmap's address in this process ({@code userfault_bitmap}). EBADF once closed. */
  public long address() {
    checkOpen();
    return mapping.address();
  }

  /**
   * A closed bitmap's memory is unmapped: reading it would be a SIGSEGV, or garbage from HotSpot's
   * unsafe access, so every use after close (its slot or runtime gone) is EBADF instead.
   */
  private void checkOpen() {
    if (life.isDead()) {
      throw closed();
    }
  }

  private static GmemException closed() {
    return new GmemException(Errno.EBADF, "the userfault bitmap was closed (its memslot or runtime is gone)");
  }

  /** A reference to the open bitmap, for one access ({@link PercpuRef#put} it after); EBADF once closed. */
  private int enter() {
    int ref = life.tryGetLive();
    if (ref < 0) {
      throw closed();
    }
    return ref;
  }

  /** The range check of a use that holds a reference (so the bitmap is open). */
  private void check(long page) {
    if (page < 0 || page >= pages) {
      throw new IndexOutOfBoundsException("page " + page + " outside a bitmap of " + pages + " pages");
    }
  }

  /** Whether page {@code page}'s bit is set, read with acquire semantics. */
  public boolean isSet(long page) {
    int ref = enter();
    try {
      check(page);
      return bit(page);
    } finally {
      life.put(ref);
    }
  }

  /** The bit, read with acquire; the caller holds {@link #life} and checked {@code page}. */
  private boolean bit(long page) {
    return (((long) WORDS.getAcquire(words, (int) ((page >>> 6) << 3))) & (1L << page)) != 0;
  }

  /** 1 when page {@code page}'s bit is set, 0 when clear, -1 when the bitmap is closed. */
  private int peek(long page) {
    int ref = life.tryGetLive();
    if (ref < 0) {
      return -1;
    }
    try {
      return bit(page) ? 1 : 0;
    } finally {
      life.put(ref);
    }
  }

  /** Sets page {@code page}'s bit. Affects only pages a vCPU has not mapped since the flag was last set. */
  public void set(long page) {
    int ref = enter();
    try {
      check(page);
      WORDS.getAndBitwiseOrRelease(words, (int) ((page >>> 6) << 3), 1L << page);
    } finally {
      life.put(ref);
    }
  }

  /** Sets the bits of pages {@code [from, to)}; a range not inside the bitmap sets nothing (IndexOutOfBoundsException). */
  public void setRange(long from, long to) {
    int ref = enter();
    try {
      checkRange(from, to);
      applyRange(from, to, true);
    } finally {
      life.put(ref);
    }
  }

  /** Sets every bit: every page is missing (a lazy restore's start). */
  public void setAll() {
    setRange(0, pages);
  }

  /**
   * Clears page {@code page}'s bit with a store-release — install the data first — and wakes the
   * host accesses waiting for it.
   */
  public void clear(long page) {
    int ref = enter();
    try {
      check(page);
      WORDS.getAndBitwiseAndRelease(words, (int) ((page >>> 6) << 3), ~(1L << page));
    } finally {
      life.put(ref);
    }
    wake(page, page + 1);
  }

  /**
   * Wakes the waiters of pages {@code [from, to)}, whose bits were just cleared. The fence pairs
   * with the waiter's registration: either it sees the bit clear or this sees it registered.
   */
  private void wake(long from, long to) {
    VarHandle.fullFence();
    if (waiters.get() == 0) {
      return;
    }
    for (int i = 0; i < WAIT_SLOTS; i++) {
      Thread t = waitThread.get(i);
      if (t != null) {
        long p = waitPage.get(i);
        if (p >= from && p < to) {
          LockSupport.unpark(t);
        }
      }
    }
    if (overflowWaiters.get() > 0) {
      wakeAll();
    }
  }

  /** Waiters on {@link #cleared} (no free slot). */
  private final AtomicInteger overflowWaiters = new AtomicInteger();

  /**
   * How many pages from {@code from} on, at most {@code max}, have their bit {@code set}: a run's
   * scan under one hold of the bitmap instead of one per page. EBADF once closed.
   */
  int runLength(long from, int max, boolean set) {
    int ref = enter();
    try {
      if (from < 0 || max < 0 || from > pages - max) {
        throw new IndexOutOfBoundsException("pages [" + from + ", +" + max + ") outside a bitmap of " + pages + " pages");
      }
      int n = 0;
      while (n < max && bit(from + n) == set) {
        n++;
      }
      return n;
    } finally {
      life.put(ref);
    }
  }

  /**
   * Clears the bits of pages {@code [from, to)} a word at a time with store-release — install the
   * data of all of them first — and wakes the waiters once.
   */
  void clearRange(long from, long to) {
    int ref = enter();
    try {
      checkRange(from, to);
      applyRange(from, to, false);
    } finally {
      life.put(ref);
    }
    wake(from, to);
  }

  private void checkRange(long from, long to) {
    if (from < 0 || from > to || to > pages) {
      throw new IndexOutOfBoundsException("pages [" + from + ", " + to + ") outside a bitmap of " + pages + " pages");
    }
  }

  /** Sets or clears the bits of pages {@code [from, to)} a word at a time, with store-release. */
  private void applyRange(long from, long to, boolean set) {
    for (long p = from; p < to; ) {
      long wordEnd = Math.min(to, (p | 63) + 1);
      long span = wordEnd - p;
      long mask = (span == 64 ? -1L : ((1L << span) - 1)) << (p & 63);
      if (set) {
        WORDS.getAndBitwiseOrRelease(words, (int) ((p >>> 6) << 3), mask);
      } else {
        WORDS.getAndBitwiseAndRelease(words, (int) ((p >>> 6) << 3), ~mask);
      }
      p = wordEnd;
    }
  }

  /** Pages whose bit is set now. */
  public long countSet() {
    int ref = enter();
    try {
      long n = 0;
      for (long w = 0; w < (pages + 63) >>> 6; w++) {
        n += Long.bitCount((long) WORDS.getAcquire(words, (int) (w << 3)));
      }
      return n;
    } finally {
      life.put(ref);
    }
  }

  /**
   * Waits until page {@code page}'s bit is clear or {@code deadlineNanos} ({@link System#nanoTime})
   * passes, or {@code abort} reports a reason to stop; returns true when clear.
   */
  boolean awaitClear(long page, long deadlineNanos, java.util.function.BooleanSupplier abort) throws InterruptedException {
    int first = peek(page);
    if (first <= 0) {
      return first == 0;
    }
    Thread me = Thread.currentThread();
    int slot = -1;
    for (int i = 0; i < WAIT_SLOTS && slot < 0; i++) {
      if (waitThread.get(i) == null && waitThread.compareAndSet(i, null, me)) {
        slot = i;
      }
    }
    if (slot < 0) {
      return awaitOnCondition(page, deadlineNanos, abort);
    }
    waitPage.set(slot, page);
    waiters.incrementAndGet(); // then the bit is read again: a clear before this is seen there
    try {
      return waitLoop(page, deadlineNanos, abort, nanos -> {
        // The poll bounds a wake-up lost to anything unforeseen; a clear of this page unparks at once.
        LockSupport.parkNanos(this, nanos);
        if (Thread.interrupted()) {
          throw new InterruptedException("waiting for page " + page);
        }
      });
    } finally {
      waiters.decrementAndGet();
      waitPage.set(slot, -1);
      waitThread.set(slot, null);
    }
  }

  /** {@link #awaitClear} for a waiter that found every slot taken: the bitmap-wide condition. */
  private boolean awaitOnCondition(long page, long deadlineNanos, java.util.function.BooleanSupplier abort) throws InterruptedException {
    waiters.incrementAndGet();
    overflowWaiters.incrementAndGet();
    try {
      lock.lock();
      try {
        return waitLoop(page, deadlineNanos, abort, cleared::awaitNanos);
      } finally {
        lock.unlock();
      }
    } finally {
      overflowWaiters.decrementAndGet();
      waiters.decrementAndGet();
    }
  }

  /** One wait of at most the given nanoseconds; may return early. */
  @FunctionalInterface
  private interface Wait {
    void upTo(long nanos) throws InterruptedException;
  }

  /** Re-reads the bit until it is clear (true), or the bitmap closed, the deadline passed or {@code abort} said so (false). */
  private boolean waitLoop(long page, long deadlineNanos, java.util.function.BooleanSupplier abort, Wait wait) throws InterruptedException {
    while (true) {
      int now = peek(page);
      if (now < 0) {
        return false; // closed under the waiter: its memory is gone, the page cannot arrive
      }
      if (now == 0) {
        return true;
      }
      long left = deadlineNanos - System.nanoTime();
      if (left <= 0 || abort.getAsBoolean()) {
        return false;
      }
      wait.upTo(Math.min(left, POLL_NANOS));
    }
  }

  /** Wakes every waiter (to see an abort). */
  void wakeAll() {
    unparkWaiters();
    lock.lock();
    try {
      cleared.signalAll();
    } finally {
      lock.unlock();
    }
  }

  private void unparkWaiters() {
    for (int i = 0; i < WAIT_SLOTS; i++) {
      Thread t = waitThread.get(i);
      if (t != null) {
        LockSupport.unpark(t);
      }
    }
  }

  boolean isOpen() {
    return !life.isDead();
  }

  @Override
  public void close() {
    if (life.kill()) { // waits out every access between its open check and its load
      unparkWaiters(); // they see it closed
      lock.lock();
      try {
        cleared.signalAll();
        mapping.close();
        file.close();
      } finally {
        lock.unlock();
      }
    }
  }
}
