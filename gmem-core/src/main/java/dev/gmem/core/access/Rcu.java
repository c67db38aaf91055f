package dev.gmem.core.access;

import dev.gmem.api.GmemException;
import dev.gmem.core.sys.Sys;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.Arrays;
import java.util.concurrent.locks.LockSupport;

/**
 * Read-side critical sections for gmem's lock-free access path and the grace period that
 * invalidation waits for: RCU in liburcu's "memb" flavour. A reader marks its own slot (a plain
 * store to a line no other thread writes), makes its checks and its access, and unmarks the slot:
 * {@code int c = rcu.enter(); if (c >= 0) { try { checks; access } finally { Rcu.exit(c); } }}.
 * A writer first makes its change visible to new readers (zaps {@link FastPageTable} entries or
 * kills the table), then {@link #synchronize()}s: {@code membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)}
 * makes every running thread of the process execute a full barrier — so each reader's slot store
 * is visible to the writer, or the reader's later loads see the writer's change — and then it waits
 * for every slot that was marked to move on. After that no reader can still act on what was zapped.
 *
 * <p>It is the user-space analogue of GUP-fast against an unmap: there the walker disables
 * interrupts and the unmapper's TLB-shootdown IPI cannot complete until the walker is done; here
 * the slot is the "interrupts off" and membarrier is the IPI.
 *
 * <h2>Why not a sequence lock</h2>
 * An optimistic read validated by a sequence (StampedLock style) costs the reader even less, but
 * it validates only <em>after</em> the load, and the load itself is the danger: a page punched or
 * unmapped in between refaults a freed page (an allocation behind gmem's back; SIGBUS on an
 * exhausted hugetlb pool) or hits unmapped address space (SIGSEGV), and a store — a host write —
 * cannot be validated afterwards at all. With RCU the writer waits before it punches, unmaps or
 * converts, so the access itself is always safe and stores take the fast path too.
 *
 * <h2>Cost</h2>
 * Measured on the project's 2-core VM (shared, so only relative numbers hold): an 8-byte
 * {@code HostMapping.getLong} of a faulted page went from 35 to 6.5 ns of CPU time (read lock,
 * shareability tree walk and filemap lookup replaced by this section and a two-load table lookup),
 * the software vCPU's {@code readLong} from 31 to 10 ns; readers share only read-only lines, so
 * threads do not slow each other down. A writer pays one membarrier (a syscall: 0.75–1.8 µs on
 * the 2026-12-04 PVM guest) per grace period, and none where no other live thread ever entered a
 * section ({@link #noOtherReader}); an invalidation that zapped no entry waits for none.
 *
 * <p>The reader finds its slot by its thread id in one static array ({@link #enter}): C2 folds the
 * array and its length, so the lookup is {@code Thread.currentThread()} (two loads on JDK 17: the
 * thread's handle, then the object), its id, and the cell's owner compared by identity; on
 * {@link #GLOBAL} the fence choice folds too. Thread CPU time per {@code HostMapping.getLong}
 * (scratch loop, minimum of 40 rounds of 5*10^6, an idle moment of the 2-core VM, A/B in
 * alternating JVMs): 3.10 ns with this section, 2.23–2.30 with none (unsafe: measured only), so
 * the section costs about 0.9 ns; the previous lookup (a {@code Reader} object in an instance
 * array, its owner compared, its fence flag loaded) gave 3.23. In that section: the lookup (four
 * dependent loads and a compare), the counter's load and the two stores. JDK 17 offers nothing
 * cheaper per thread: a {@code ThreadLocal} is a hash probe, and there are no scoped values or
 * carrier-thread fields to hang a slot on; a lookup hoisted out of the caller's loop would save
 * about half of it, but the accessors are called one access at a time.
 *
 * <h2>Ordering</h2>
 * The reader's slot store must not be reordered after its loads. The compiler side is kept by a
 * {@link VarHandle#acquireFence()} after the store, which HotSpot's C2 compiles to a memory barrier
 * node ordering all memory accesses around it (no instruction on x86); the hardware side by the
 * writer's membarrier. Where membarrier is refused (old kernels, seccomp), readers issue a real
 * {@link VarHandle#fullFence()} instead and the writer needs none. Sections must be short (a few
 * loads and one access within a page) and must not block: a writer waits for them.
 */
public final class Rcu {
  /** The process-wide instance: readers of every inode share their slots. */
  public static final Rcu GLOBAL = new Rcu(probeMembarrier());
  /**
   * {@link #GLOBAL}'s {@link #fence} as a constant: {@link #enter} on {@code GLOBAL} (a constant
   * receiver once inlined) folds {@code this == GLOBAL} and this, so the fast path has no branch.
   */
  private static final boolean GLOBAL_FENCE = GLOBAL.fence;

  /** Cells a thread finds by its id alone (its home cell), then as many for threads whose home is taken. */
  private static final int HOME_CELLS = 1024;
  private static final int CELLS = 2 * HOME_CELLS;
  /** Longs per cell: 128 bytes, so that the adjacent-line prefetcher pulls in no other thread's slot. */
  private static final int CELL_SHIFT = 4;
  /** Where a cell's slot lies in it. */
  private static final int SLOT = 1;

  /**
   * Every thread's cell, static so that C2 folds the array and its length into the reader's code:
   * its slot, 0 outside a section, else the grace-period counter the owner read on entry; written
   * only by the owner. Shared by every instance: a thread is in one section at a time.
   */
  private static final long[] CELL = new long[CELLS << CELL_SHIFT];
  /**
   * The cell owners, by cell: written under the class lock, read racily by a reader to find its
   * home cell (a stale read sees another thread: never the caller unless the caller owns it — an
   * identity compare, since {@code Thread.getId()} can be overridden) and by a writer to see a
   * dead reader. Strong: a dead owner stays reachable until its cell is taken over, at most one
   * per cell.
   */
  private static final Thread[] OWNERS = new Thread[CELLS];
  /** The overflow cell of a thread whose home cell another live thread holds; -1: none left. */
  private static final ThreadLocal<int[]> OVERFLOW = new ThreadLocal<>();
  private static final VarHandle LONGS = MethodHandles.arrayElementVarHandle(long[].class);
  private static final VarHandle GP;

  static {
    try {
      GP = MethodHandles.lookup().findVarHandle(Rcu.class, "gp", long.class);
    } catch (ReflectiveOperationException e) {
      throw new ExceptionInInitializerError(e);
    }
  }

  /** Indices of the slots of every cell ever claimed, which a writer scans; grows under the class lock. */
  private static volatile int[] registry = new int[0];

  private final Sys membarrier;
  /** No membarrier: readers issue a full fence after marking their slot. */
  private final boolean fence;
  /**
   * Grace-period counter: a reader's slot holds the value it read on entry (never 0), so a writer
   * waits only for sections that began before its own increment, never for later ones.
   */
  private volatile long gp = 1;

  /** {@code membarrier} null: readers fence themselves. */
  Rcu(Sys membarrier) {
    this.membarrier = membarrier;
    this.fence = membarrier == null;
  }

  /** Registers the process for expedited private membarriers; null where the kernel refuses. */
  private static Sys probeMembarrier() {
    try {
      Sys sys = Sys.load();
      long commands = sys.membarrier(Sys.MEMBARRIER_CMD_QUERY);
      if ((commands & Sys.MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) {
        return null;
      }
      sys.membarrier(Sys.MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED);
      return sys;
    } catch (GmemException | LinkageError e) {
      return null;
    }
  }

  /** Whether writers pay for ordering with membarrier (else every reader pays a full fence). */
  public boolean usesMembarrier() {
    return membarrier != null;
  }

  /**
   * Enters a read-side section: finds this thread's cell (its id's home cell, whose owner is this
   * thread: one array load and a compare), loads the (rarely written) grace-period counter and stores it to
   * the cell's slot, a line no other thread writes. Returns the slot's index for {@link #exit};
   * -1 when every cell was held by a live thread at this thread's first section (over
   * {@value #CELLS} live threads entered sections): then the caller takes its locked path, this
   * thread for the rest of its life. Not reentrant.
   */
  public int enter() {
    Thread t = Thread.currentThread();
    int cell = (int) t.getId() & (HOME_CELLS - 1);
    int c = cell << CELL_SHIFT;
    if (OWNERS[cell] != t) {
      c = awayCell();
      if (c < 0) {
        return -1;
      }
    }
    LONGS.setOpaque(CELL, c + SLOT, (long) GP.getAcquire(this));
    if (this == GLOBAL ? GLOBAL_FENCE : fence) {
      VarHandle.fullFence();
    } else {
      VarHandle.acquireFence();
    }
    return c + SLOT;
  }

  /** Leaves the section {@link #enter} returned {@code slot} for: its accesses happen before a writer sees the slot cleared. */
  public static void exit(int slot) {
    LONGS.setRelease(CELL, slot, 0L);
  }

  /** The cell of a thread not (yet) in its home cell: claims home if free, else an overflow cell. */
  private static int awayCell() {
    int[] mine = OVERFLOW.get();
    if (mine == null) {
      mine = new int[] {claim(Thread.currentThread())};
      OVERFLOW.set(mine);
    }
    return mine[0];
  }

  /**
   * Claims the thread's home cell if no live thread holds it (then the fast lookup finds it from
   * now on), else the first overflow cell no live thread holds; -1 if none. The registry's volatile
   * write orders the claim before the thread's first section.
   */
  private static synchronized int claim(Thread t) {
    long id = t.getId();
    int home = (int) id & (HOME_CELLS - 1);
    int cell = free(home) ? home : -1;
    for (int i = HOME_CELLS; cell < 0 && i < CELLS; i++) {
      cell = free(i) ? i : -1;
    }
    if (cell < 0) {
      return -1;
    }
    OWNERS[cell] = t;
    int c = cell << CELL_SHIFT;
    int[] rs = registry;
    if (Arrays.stream(rs).noneMatch(s -> s == c + SLOT)) {
      rs = Arrays.copyOf(rs, rs.length + 1);
      rs[rs.length - 1] = c + SLOT;
    }
    registry = rs;
    return c;
  }

  /** A cell no live thread holds (a dead owner left its slot 0: sections end in {@code finally}). */
  private static boolean free(int cell) {
    return OWNERS[cell] == null || !OWNERS[cell].isAlive();
  }

  /**
   * Waits until every read-side section that may have seen the state before the caller's change
   * has ended. The caller made the change (plain stores suffice) before calling.
   */
  public void synchronize() {
    VarHandle.fullFence();
    int[] rs = registry;
    if (noOtherReader(rs)) {
      return; // a reader registering now fences (volatile write) before its first check
    }
    long next = (long) GP.getAndAdd(this, 1L) + 1;
    if (membarrier != null) {
      membarrier.membarrier(Sys.MEMBARRIER_CMD_PRIVATE_EXPEDITED);
    }
    for (int slot : rs) {
      long s = (long) LONGS.getVolatile(CELL, slot);
      if (s != 0 && s < next) {
        awaitExit(slot, s);
      }
    }
  }

  /**
   * Whether every cell of {@code rs} is the caller's own or a dead thread's: then no section can be
   * open (the caller is in none: sections are not reentrant and never wait) and there is nothing to
   * wait for, and no membarrier to pay — a syscall, about 0.7 µs on a PVM guest, as much as a 4 KiB
   * punch's own fallocate. A thread that claims a cell sets its owner before the registry's
   * volatile write and enters its first section after it: if this read of the registry missed that
   * write, the thread's first section sees the caller's change; if it saw it, it sees the owner.
   */
  static boolean noOtherReader(int[] rs) {
    Thread self = Thread.currentThread();
    for (int slot : rs) {
      Thread owner = OWNERS[slot >>> CELL_SHIFT];
      if (owner != self && owner != null && owner.isAlive()) {
        return false;
      }
    }
    return true;
  }

  /** Waits until the reader left the section it entered with {@code s} (it may have entered a later one). */
  private static void awaitExit(int slot, long s) {
    for (int spins = 0; (long) LONGS.getVolatile(CELL, slot) == s; spins++) {
      if (spins < 1000) {
        Thread.onSpinWait();
      } else if (free(slot >>> CELL_SHIFT)) {
        return; // its owner died (only a thread stopped inside a section leaves its slot set)
      } else if (spins < 2000) {
        Thread.yield();
      } else {
        LockSupport.parkNanos(10_000); // the reader was preempted inside its section
      }
    }
  }
}
