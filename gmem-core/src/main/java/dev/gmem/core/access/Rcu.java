package dev.gmem.core.access;

import dev.gmem.api.GmemException;
import dev.gmem.core.sys.Sys;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.locks.LockSupport;

/**
 * Read-side critical sections for gmem's lock-free access path and the grace period that
 * invalidation waits for: RCU in liburcu's "memb" flavour. A reader marks its own slot (a plain
 * store to a line no other thread writes), makes its checks and its access, and unmarks the slot.
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
 * the software vCPU's {@code readLong} from 31 to 10 ns; in VcpuAccessBench the ratio to a raw
 * {@code ByteBuffer.getLong} stays the same at 1, 2 and 4 threads, since readers share only
 * read-only lines. A writer pays one membarrier (a few microseconds) per invalidation.
 *
 * <p>Where a section's nanoseconds go (thread CPU time per operation, minimum of 10 rounds of
 * 2*10^7, a scratch loop on the same VM while loaded — only the differences hold): a load alone
 * 0.45 (hoisted by C2: a lower bound), {@code lock}/{@code unlock} around it with the reader looked
 * up once outside the loop 1.1, with {@link #reader()} per access 2.1–2.4. A variant that looked
 * up on static finals (no {@code rcu} or {@code fence} field loads) measured the same (2.3), so the
 * instance state stays. C2 (PrintInlining) inlines {@code reader}, {@code lock} and {@code unlock}
 * into the accessors; what is left is {@code Thread.currentThread()}, its id, the cell and the
 * owner compare, the counter's load and the two stores.
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

  /** Readers indexed by thread id; a thread whose cell another live thread holds uses {@link #readers}. */
  private static final int CELLS = 4096;

  private static final VarHandle SLOT;
  private static final VarHandle GP;

  static {
    try {
      SLOT = MethodHandles.lookup().findVarHandle(Slot.class, "slot", long.class);
      GP = MethodHandles.lookup().findVarHandle(Rcu.class, "gp", long.class);
    } catch (ReflectiveOperationException e) {
      throw new ExceptionInInitializerError(e);
    }
  }

  private final Sys membarrier;
  /**
   * Readers by thread id, written under the registration lock and read racily: a stale or torn-free
   * read yields another thread's reader (refused by the owner check) or null, and the slow way.
   */
  private final Reader[] byThreadId = new Reader[CELLS];
  private final ThreadLocal<Reader> readers = ThreadLocal.withInitial(this::register);
  private volatile Reader[] registry = new Reader[0];
  /**
   * Grace-period counter: a reader's slot holds the value it read on entry (never 0), so a writer
   * waits only for sections that began before its own increment, never for later ones.
   */
  private volatile long gp = 1;

  /** {@code membarrier} null: readers fence themselves. */
  Rcu(Sys membarrier) {
    this.membarrier = membarrier;
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
   * This thread's reader slot: the cell of its thread id (a few loads, cheaper than a
   * {@link ThreadLocal}), else a thread-local one.
   */
  public Reader reader() {
    Thread t = Thread.currentThread();
    Reader r = byThreadId[(int) t.getId() & (CELLS - 1)];
    return r != null && r.owner == t ? r : readers.get();
  }

  private synchronized Reader register() {
    Thread t = Thread.currentThread();
    Reader r = new Reader(this, t);
    List<Reader> live = new ArrayList<>();
    for (Reader old : registry) {
      if (old.ownerAlive()) {
        live.add(old);
      }
    }
    live.add(r);
    registry = live.toArray(new Reader[0]);
    int cell = (int) t.getId() & (CELLS - 1);
    Reader holder = byThreadId[cell];
    if (holder == null || !holder.ownerAlive()) {
      byThreadId[cell] = r;
    }
    return r;
  }

  /**
   * Waits until every read-side section that may have seen the state before the caller's change
   * has ended. The caller made the change (plain stores suffice) before calling.
   */
  public void synchronize() {
    VarHandle.fullFence();
    Reader[] rs = registry;
    if (rs.length == 0) {
      return; // a reader registering now fences (volatile write) before its first check
    }
    long next = (long) GP.getAndAdd(this, 1L) + 1;
    if (membarrier != null) {
      membarrier.membarrier(Sys.MEMBARRIER_CMD_PRIVATE_EXPEDITED);
    }
    for (Reader r : rs) {
      long s = (long) SLOT.getVolatile(r);
      if (s != 0 && s < next) {
        awaitExit(r, s);
      }
    }
  }

  /** Waits until the reader left the section it entered with {@code s} (it may have entered a later one). */
  private static void awaitExit(Reader r, long s) {
    for (int spins = 0; (long) SLOT.getVolatile(r) == s; spins++) {
      if (spins < 1000) {
        Thread.onSpinWait();
      } else if (!r.ownerAlive()) {
        return;
      } else if (spins < 2000) {
        Thread.yield();
      } else {
        LockSupport.parkNanos(10_000); // the reader was preempted inside its section
      }
    }
  }

  /** Padding before the slot: slots of different threads never share a cache line. */
  abstract static class PadBefore {
    long p01, p02, p03, p04, p05, p06, p07, p08;
  }

  /** 0 outside a section, else the grace-period counter the owner read on entry. Written only by the owner. */
  abstract static class Slot extends PadBefore {
    long slot;
  }

  abstract static class PadAfter extends Slot {
    long p11, p12, p13, p14, p15, p16, p17, p18;
  }

  /** One thread's slot. Use: {@code lock(); try { checks; access } finally { unlock(); }}. */
  public static final class Reader extends PadAfter {
    private final Rcu rcu;
    private final boolean fence;
    /**
     * Strong: one load and a compare on every lookup instead of a reference's referent. A dead
     * owner is kept reachable only by its reader, which {@link #register} drops from the registry
     * and whose thread-id cell the next thread with that cell takes: at most one dead thread object
     * per cell.
     */
    private final Thread owner;

    private Reader(Rcu rcu, Thread owner) {
      this.rcu = rcu;
      this.fence = rcu.membarrier == null;
      this.owner = owner;
    }

    boolean ownerAlive() {
      return owner.isAlive();
    }

    /**
     * Enters a read-side section: a load of the (rarely written) grace-period counter and a store
     * to this thread's own line. Not reentrant.
     */
    public void lock() {
      SLOT.setOpaque(this, (long) GP.getAcquire(rcu));
      if (fence) {
        VarHandle.fullFence();
      } else {
        VarHandle.acquireFence();
      }
    }

    /** Leaves it: every access of the section happens before a writer sees the slot cleared. */
    public void unlock() {
      SLOT.setRelease(this, 0L);
    }
  }
}
