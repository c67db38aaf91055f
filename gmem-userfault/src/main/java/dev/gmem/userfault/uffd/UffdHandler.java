package dev.gmem.userfault.uffd;

import dev.gmem.api.Api;
import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.userfault.FaultSource;
import dev.gmem.userfault.FaultStats;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;
import jnr.ffi.Pointer;

/**
 * A userfaultfd engine: one {@link Userfaultfd} and one handler thread that polls it, reads the
 * {@code uffd_msg}s and answers each page fault as its region's {@link UffdPages} says — UFFDIO_COPY
 * from the handler's own buffer, UFFDIO_ZEROPAGE only for a page its source calls zero,
 * UFFDIO_CONTINUE for MINOR faults — and passes {@code EVENT_REMOVE} on. The handler thread only
 * makes native calls and touches its own buffers, never registered memory, so it needs no
 * safepoint to make progress, and the threads it unblocks wait inside the kernel (in native code,
 * a syscall's copy, or a vCPU's {@code KVM_RUN}).
 *
 * <p>Supervision: a fault answered LATER that is not completed within the deadline, or whose
 * source throws, is poisoned (UFFDIO_POISON) where the kernel offers it — the access then fails
 * (EFAULT for a kernel copy, SIGBUS for a load) instead of waiting forever or seeing a zero page —
 * and the handler stops answering from then on ({@link #failure()}).
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public final class UffdHandler implements AutoCloseable {
  private static final long PAGE = 4096;
  private static final short POLLIN = 1;
  private static final int BATCH = 64;

  /** A registered range and how its faults are answered. */
  public record Region(long start, long length, long mode, UffdPages pages) {
    public boolean contains(long address) {
      return address >= start && address - start < length;
    }
  }

  private final Userfaultfd uffd;
  private final FaultStats stats;
  private final long deadlineNanos;
  private final List<Region> regions = new CopyOnWriteArrayList<>();
  /** Faults answered LATER: page address → when first seen. */
  private final Map<Long, Long> pending = new ConcurrentHashMap<>();
  private final Thread thread;
  private final int stopFd;
  private final AtomicLong faults = new AtomicLong();
  private volatile String failure;
  private volatile boolean running = true;

  private UffdHandler(Userfaultfd uffd, FaultStats stats, Duration deadline, String name) {
    this.uffd = uffd;
    this.stats = stats;
    this.deadlineNanos = deadline.toNanos();
    int efd = Native.libc().eventfd(0, 0x80000 | 0x800); // EFD_CLOEXEC | EFD_NONBLOCK
    if (efd < 0) {
      throw Native.failure("eventfd");
    }
    this.stopFd = efd;
    this.thread = new Thread(this::loop, name);
    thread.setDaemon(true);
  }

  /**
   * A handler on a new userfaultfd with MISSING and MINOR on shmem, EVENT_REMOVE and (where
   * offered) POISON; started at once.
   */
  public static UffdHandler start(FaultStats stats, Duration deadline, String name) {
    // POISON only where the kernel offers it (5.19+... 6.6): without it a dead source leaves the fault waiting.
    long want = Userfaultfd.FEATURE_MISSING_SHMEM | Userfaultfd.FEATURE_MINOR_SHMEM | Userfaultfd.FEATURE_EVENT_REMOVE;
    Userfaultfd u;
    try {
      u = Userfaultfd.open(want | Userfaultfd.FEATURE_POISON);
    } catch (GmemException e) {
      u = Userfaultfd.open(want);
    }
    UffdHandler h = new UffdHandler(u, stats, deadline, name);
    h.thread.start();
    return h;
  }

  public Userfaultfd userfaultfd() {
    return uffd;
  }

  /** Registers {@code [start, start+length)} in {@code mode} (MISSING, MINOR or both) answered by {@code pages}. */
  public Region register(long start, long length, long mode, UffdPages pages) {
    uffd.register(start, length, mode);
    Region r = new Region(start, length, mode, pages);
    regions.add(r);
    return r;
  }

  public void unregister(Region r) {
    regions.remove(r);
    uffd.unregister(r.start(), r.length());
  }

  /** Page faults seen so far. */
  public long faults() {
    return faults.get();
  }

  /** Why the handler stopped answering, or null while healthy. */
  public String failure() {
    return failure;
  }

  /** Completes a fault answered LATER with {@code page}'s 4096 bytes (a direct buffer): UFFDIO_COPY. EEXIST if present. */
  public void complete(long pageAddress, ByteBuffer page) {
    if (!page.isDirect() || page.remaining() < PAGE) {
      throw GmemException.einval("a page is a direct buffer of 4096 bytes");
    }
    long addr = jnr.ffi.Runtime.getSystemRuntime().getMemoryManager().newPointer(page).address() + page.position();
    copied(pageAddress, addr);
  }

  /** Completes a fault answered LATER on a page its source says is zero: UFFDIO_ZEROPAGE. */
  public void completeZero(long pageAddress) {
    uffd.zeropage(pageAddress, PAGE);
    resolved(pageAddress);
  }

  private void copied(long pageAddress, long src) {
    copy(pageAddress, src);
    resolved(pageAddress);
  }

  private void copy(long pageAddress, long src) {
    try {
      uffd.copy(pageAddress, src, PAGE);
    } catch (GmemException e) {
      if (e.errno() != Errno.EEXIST) {
        throw e;
      }
      uffd.wake(pageAddress, PAGE); // a racing fault filled it: wake ours
    }
  }

  private void resolved(long pageAddress) {
    Long since = pending.remove(pageAddress);
    if (since != null) {
      stats.resolved(FaultSource.HOST_UFFD, thread.getName(), pageAddress, System.nanoTime() - since);
    }
  }

  private void loop() {
    Pointer fds = Native.allocate(16);
    fds.putInt(0, uffd.fd());
    fds.putShort(4, POLLIN);
    fds.putInt(8, stopFd);
    fds.putShort(12, POLLIN);
    Pointer msgs = Native.allocate(BATCH * Userfaultfd.MSG_SIZE);
    ByteBuffer page = ByteBuffer.allocateDirect((int) PAGE).order(ByteOrder.nativeOrder());
    long pageAddr = jnr.ffi.Runtime.getSystemRuntime().getMemoryManager().newPointer(page).address();
    int tick = (int) Math.max(1, Math.min(100, deadlineNanos / 4_000_000));
    while (running) {
      fds.putShort(6, (short) 0);
      fds.putShort(14, (short) 0);
      int n = Native.libc().poll(fds, 2, pending.isEmpty() ? 1000 : tick);
      if (n < 0 && Native.errno() != Errno.EINTR.code()) {
        fail("poll(userfaultfd) failed: errno " + Native.errno());
        break;
      }
      if (!running) {
        break;
      }
      long got = Native.libc().read(uffd.fd(), msgs.address(), BATCH * Userfaultfd.MSG_SIZE);
      if (got < 0 && Native.errno() != Errno.EAGAIN.code()) {
        fail("read(userfaultfd) failed: errno " + Native.errno());
        break;
      }
      // Parsed in place: a message list and a record per fault showed in the per-fault profile.
      for (long off = 0; off + Userfaultfd.MSG_SIZE <= got; off += Userfaultfd.MSG_SIZE) {
        int event = msgs.getByte(off) & 0xff;
        if (event == Userfaultfd.EVENT_PAGEFAULT) {
          fault(msgs.getLong(off + 8), msgs.getLong(off + 16), page, pageAddr);
        } else if (event == Userfaultfd.EVENT_REMOVE) {
          removed(msgs.getLong(off + 8), msgs.getLong(off + 16));
        }
      }
      expire();
    }
  }

  private void removed(long start, long end) {
    for (Region r : regions) {
      if (r.contains(start)) {
        r.pages().removed(r, start, end);
      }
    }
  }

  private void fault(long flags, long address, ByteBuffer page, long pageAddr) {
    boolean minor = (flags & Userfaultfd.PAGEFAULT_FLAG_MINOR) != 0;
    boolean write = (flags & Userfaultfd.PAGEFAULT_FLAG_WRITE) != 0;
    faults.incrementAndGet();
    long addr = address & ~(PAGE - 1);
    Region r = null;
    for (Region x : regions) {
      if (x.contains(addr)) {
        r = x;
        break;
      }
    }
    long t0 = System.nanoTime();
    if (r == null || failure != null) {
      pending.putIfAbsent(addr, t0);
      poisonOrLeave(addr, failure != null ? failure : "fault outside every region");
      return;
    }
    try {
      long src = minor ? 0 : r.pages().mapped(r, addr);
      if (src != 0) {
        // The hot path (a warm snapshot mapped in): no boxed entry put in `pending` and removed
        // per fault; timed from t0, or from when a fault on the page was first left waiting.
        Long waiting = pending.isEmpty() ? null : pending.remove(addr);
        copy(addr, src);
        stats.resolved(FaultSource.HOST_UFFD, thread.getName(), addr, System.nanoTime() - (waiting != null ? waiting : t0));
        return;
      }
      pending.putIfAbsent(addr, t0); // before the source is asked: it may complete LATER from another thread at once
      if (minor) {
        if (r.pages().minor(r, addr, write) == UffdPages.Answer.PRESENT) {
          uffd.resume(addr, PAGE);
          resolved(addr);
        }
        return;
      }
      page.clear();
      switch (r.pages().missing(r, addr, write, page)) {
        case DATA -> copied(addr, pageAddr);
        case ZERO -> completeZero(addr);
        case PRESENT -> {
          uffd.wake(addr, PAGE);
          resolved(addr);
        }
        case LATER -> { }
      }
    } catch (RuntimeException e) {
      fail("page source failed at 0x" + Long.toHexString(addr) + ": " + e);
      poisonOrLeave(addr, failure);
    }
  }

  /** Faults answered LATER whose deadline passed: the source stalled. */
  private void expire() {
    if (pending.isEmpty()) {
      return;
    }
    long now = System.nanoTime();
    for (Map.Entry<Long, Long> e : pending.entrySet()) {
      if (now - e.getValue() > deadlineNanos) {
        fail("page at 0x" + Long.toHexString(e.getKey()) + " not served within " + Duration.ofNanos(deadlineNanos));
        poisonOrLeave(e.getKey(), failure);
      }
    }
  }

  private void fail(String why) {
    if (failure == null) {
      failure = why;
    }
  }

  /** The fault can never be served: poison it so that the access fails, where the kernel can. */
  private void poisonOrLeave(long addr, String why) {
    pending.remove(addr);
    stats.failed();
    if ((uffd.features() & Userfaultfd.FEATURE_POISON) != 0) {
      try {
        uffd.poison(addr, PAGE);
      } catch (GmemException e) {
        if (e.errno() != Errno.EEXIST) {
          fail(why + "; UFFDIO_POISON failed: " + e.getMessage());
        }
      }
    }
  }

  /**
   * Faults still waiting when the handler closes can never be answered, and closing the
   * userfaultfd would wake them to what the kernel does without a handler: a fresh zero page for a
   * MISSING fault. Poison them (those answered LATER and those still queued) so the access fails.
   */
  private void poisonWaiting() {
    Pointer msgs = Native.allocate(BATCH * Userfaultfd.MSG_SIZE);
    for (List<Userfaultfd.Message> left = uffd.read(msgs, BATCH * Userfaultfd.MSG_SIZE); !left.isEmpty();
        left = uffd.read(msgs, BATCH * Userfaultfd.MSG_SIZE)) {
      for (Userfaultfd.Message m : left) {
        if (m.isPageFault()) {
          pending.putIfAbsent(m.address() & ~(PAGE - 1), System.nanoTime());
        }
      }
    }
    for (Long addr : List.copyOf(pending.keySet())) {
      fail("the userfaultfd handler was closed");
      poisonOrLeave(addr, failure);
    }
  }

  @Override
  public void close() {
    if (!running) {
      return;
    }
    running = false;
    Pointer one = Native.allocate(8);
    one.putLong(0, 1);
    Native.libc().write(stopFd, one.address(), 8);
    try {
      thread.join(5000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    if (!thread.isAlive()) {
      poisonWaiting();
    }
    for (Region r : regions) {
      try {
        uffd.unregister(r.start(), r.length());
      } catch (GmemException ignored) {
        // the mapping went first: the kernel unregistered it with the VMA
      }
    }
    regions.clear();
    uffd.close();
    Native.libc().close(stopFd);
  }
}
