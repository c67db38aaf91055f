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
import java.util.concurrent.locks.Condition;
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
  private volatile boolean open = true;

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
    if (!open) {
      throw new GmemException(Errno.EBADF, "the userfault bitmap was closed (its memslot or runtime is gone)");
    }
  }

  private void check(long page) {
    checkOpen();
    if (page < 0 || page >= pages) {
      throw new IndexOutOfBoundsException("page " + page + " outside a bitmap of " + pages + " pages");
    }
  }

  /** Whether page {@code page}'s bit is set, read with acquire semantics. */
  public boolean isSet(long page) {
    check(page);
    return (((long) WORDS.getAcquire(words, (int) ((page >>> 6) << 3))) & (1L << page)) != 0;
  }

  /** Sets page {@code page}'s bit. Affects only pages a vCPU has not mapped since the flag was last set. */
  public void set(long page) {
    check(page);
    WORDS.getAndBitwiseOrRelease(words, (int) ((page >>> 6) << 3), 1L << page);
  }

  /** Sets the bits of pages {@code [from, to)}; a range not inside the bitmap sets nothing (IndexOutOfBoundsException). */
  public void setRange(long from, long to) {
    checkOpen();
    if (from < 0 || from > to || to > pages) {
      throw new IndexOutOfBoundsException("pages [" + from + ", " + to + ") outside a bitmap of " + pages + " pages");
    }
    for (long p = from; p < to; p++) {
      set(p);
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
    check(page);
    WORDS.getAndBitwiseAndRelease(words, (int) ((page >>> 6) << 3), ~(1L << page));
    if (waiters.get() > 0) {
      lock.lock();
      try {
        cleared.signalAll();
      } finally {
        lock.unlock();
      }
    }
  }

  /** Pages whose bit is set now. */
  public long countSet() {
    checkOpen();
    long n = 0;
    for (long w = 0; w < (pages + 63) >>> 6; w++) {
      n += Long.bitCount((long) WORDS.getAcquire(words, (int) (w << 3)));
    }
    return n;
  }

  /**
   * Waits until page {@code page}'s bit is clear or {@code deadlineNanos} ({@link System#nanoTime})
   * passes, or {@code abort} reports a reason to stop; returns true when clear.
   */
  boolean awaitClear(long page, long deadlineNanos, java.util.function.BooleanSupplier abort) throws InterruptedException {
    if (!isSet(page)) {
      return true;
    }
    waiters.incrementAndGet();
    try {
      lock.lock();
      try {
        while (true) {
          if (!open) {
            return false; // closed under the waiter: its memory is gone, the page cannot arrive
          }
          if (!isSet(page)) {
            return true;
          }
          long left = deadlineNanos - System.nanoTime();
          if (left <= 0 || abort.getAsBoolean()) {
            return false;
          }
          cleared.awaitNanos(Math.min(left, POLL_NANOS));
        }
      } finally {
        lock.unlock();
      }
    } finally {
      waiters.decrementAndGet();
    }
  }

  /** Wakes every waiter (to see an abort). */
  void wakeAll() {
    lock.lock();
    try {
      cleared.signalAll();
    } finally {
      lock.unlock();
    }
  }

  boolean isOpen() {
    return open;
  }

  @Override
  public void close() {
    if (open) {
      open = false;
      // Waiters check open under the lock before they read a bit: take it before unmapping.
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
