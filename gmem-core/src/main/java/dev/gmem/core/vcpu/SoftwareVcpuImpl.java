package dev.gmem.core.vcpu;

import com.kenai.jffi.MemoryIO;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.GuestCall;
import dev.gmem.api.Memslot;
import dev.gmem.api.MemoryExitException;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.core.access.Direct;
import dev.gmem.core.access.FastPageTable;
import dev.gmem.core.access.Rcu;
import dev.gmem.core.file.GuestMemFileImpl;
import dev.gmem.core.inode.GuestMemInodeImpl;
import dev.gmem.core.memslot.MemslotTable;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Objects;
import java.util.concurrent.locks.Lock;
import java.util.function.BooleanSupplier;

/**
 * The guest fault path in software: memslot → file → inode, then either the lock-free path for a
 * page whose last fault with the same private bit succeeded and that no invalidation touched since, or,
 * under the inode's invalidate lock taken shared, {@link dev.gmem.core.inode.FaultPath#guestFault}
 * for the shareability check, folio allocation and the arch's prepare. Accesses never span pages: a multi-page access is split, and
 * the first page that exits stops it (earlier pages are done, as on hardware). Every access goes
 * through {@link #accessPage}.
 */
public final class SoftwareVcpuImpl implements SoftwareVcpu {
  private static final MemoryIO IO = MemoryIO.getInstance();
  private static final long PAGE_MASK = Folio.PAGE_SIZE - 1;

  private final MemslotTable memslots;
  private final ArchHooks arch;
  private final Runnable vmAlive;
  private final BooleanSupplier runnable;
  /**
   * The binding the last access used, like KVM's {@code last_used_slot}: a hint, checked on every use
   * (the GPA must fall in it), written only when it changes so that threads sharing this vCPU keep
   * the line shared. It stands for "the table is still at the hint's generation and vCPUs may run":
   * every memslot change and every hold of the VM's vCPUs (dead, moved away) clears it
   * ({@link #forgetHint}), so the lock-free path reads neither the generation nor the VM's state,
   * nor whether the slot's window is still open. A hint is installed only inside a read-side section
   * that finds the table still at its generation and the vCPUs runnable, and that checks both again
   * after the write and clears it if either moved ({@link #install}); a deletion clears the hint
   * and waits for two grace periods before it unmaps the slot's window (see {@link #install} for
   * why two), so no access can load through a hint to a window that is gone.
   */
  private volatile Hint lastSlot;

  /**
   * The hinted binding with the table's generation it was looked up in, published as one reference:
   * a late toggle of a slot's feature flag (KVM Userfault) replaces its binding but keeps its window
   * open, so the hint must not outlive the generation or faults would see the old flags. The fields
   * the lock-free path reads are copied in (all final in the binding), so that a hit loads the
   * hint's line and not the binding's as well.
   */
  private static final class Hint {
    final MemslotTable.Binding binding;
    final long generation;
    /**
     * The slot's GPA and size biased by {@link Long#MIN_VALUE}, so that "{@code gpa} in the slot"
     * ({@code gpa - start} below {@code size}, unsigned) is one subtract and one signed compare.
     */
    final long startBiased;
    final long sizeBiased;
    final long fileDelta;
    final long viewBase;
    final GuestMemFileImpl file;

    Hint(MemslotTable.Binding binding, long generation) {
      this.binding = binding;
      this.generation = generation;
      this.startBiased = binding.gpa() - Long.MIN_VALUE;
      this.sizeBiased = binding.size() + Long.MIN_VALUE;
      this.fileDelta = binding.fileDelta();
      this.viewBase = binding.viewBase();
      this.file = binding.file();
    }

    /** Whether {@code gpa} lies in the slot. */
    boolean contains(long gpa) {
      return gpa - startBiased < sizeBiased;
    }

    /**
     * Whether the lock-free path may access file offset {@code off} (of a GPA {@link #contains
     * in the slot}) at {@code viewBase + off}: a small inode's plane maps its page for this
     * access's bit. Only inside an {@link Rcu} read-side section, which holds the answer true; the
     * window needs no check, a hint's window outlives every section that can load the hint (see
     * {@link #install}).
     */
    boolean mapped(long off, boolean privateAccess) {
      long[] plane = file.guestPlane(privateAccess); // null: a large inode, looked up by the slow path
      // A plane is a small inode's (at most 2^20 pages) and off lies in the file: the page is an int.
      return plane != null && FastPageTable.isMapped(plane, (int) (off >>> Folio.PAGE_SHIFT));
    }
  }

  /**
   * @param arch    the VM's hooks, which turn guest hypercalls into exits
   * @param vmAlive throws what an access on the VM fails with now (EIO once the VM is dead: its
   *     context moved away, or its arch hit {@code KVM_BUG_ON}; the arch's refusal while no vCPU
   *     may run yet, {@code ArchHooks.vcpuPreRun})
   */
  public SoftwareVcpuImpl(MemslotTable memslots, ArchHooks arch, Runnable vmAlive, BooleanSupplier runnable) {
    this.memslots = memslots;
    this.arch = arch;
    this.vmAlive = vmAlive;
    this.runnable = runnable;
  }

  /** The memslots changed, or the VM's vCPUs are held: the next access looks its slot up, past {@code vmAlive}. */
  public void forgetHint() {
    lastSlot = null;
  }

  @Override
  public GuestCall hypercall(long nr, long... args) {
    vmAlive.run();
    if (args.length > VcpuExit.Hypercall.MAX_ARGS) {
      throw GmemException.einval("a hypercall takes at most " + VcpuExit.Hypercall.MAX_ARGS + " arguments, got " + args.length);
    }
    return arch.guestCall(nr, args.clone());
  }

  @Override
  public VcpuExit read(long gpa, byte[] dst, int dstIndex, int len, boolean privateAccess) {
    Objects.checkFromIndexSize(dstIndex, len, dst.length);
    return accessBytes(gpa, dst, dstIndex, len, false, privateAccess);
  }

  @Override
  public VcpuExit write(long gpa, byte[] src, int srcIndex, int len, boolean privateAccess) {
    Objects.checkFromIndexSize(srcIndex, len, src.length);
    return accessBytes(gpa, src, srcIndex, len, true, privateAccess);
  }

  /**
   * {@link #accessPage}'s lock-free path for the commonest guest access, with the load itself
   * rather than through a {@link Copy}: it inlines into any caller, so that no compilation of the
   * caller is left with a call to an out-of-line {@code accessPage} whose {@code Copy} call site
   * has seen every access kind (a scratch loop: 7.1 ns of thread CPU per read at 1 thread before,
   * 4.3–4.9 at 1 and 4 threads after; with the shorter hit path of {@link Hint}, 3.3–4.2 ns in
   * JMH). Everything else — a miss, a page edge, the fault — is
   * {@link #accessLong}'s.
   */
  @Override
  public long readLong(long gpa, boolean privateAccess) {
    int section = Rcu.GLOBAL.enter();
    if (section >= 0) {
      try {
        // Loaded inside the section: a hint's window outlives only the sections that could load it (install).
        Hint hint = lastSlot; // non-null: the table at its generation, and vCPUs may run (see lastSlot)
        if (hint != null && (gpa & PAGE_MASK) <= Folio.PAGE_SIZE - Long.BYTES && hint.contains(gpa)) {
          long off = gpa + hint.fileDelta;
          if (hint.mapped(off, privateAccess)) {
            return Direct.getLong(hint.viewBase + off);
          }
        }
      } finally {
        Rcu.exit(section);
      }
    }
    return accessLong(gpa, false, 0, privateAccess);
  }

  @Override
  public void writeLong(long gpa, long value, boolean privateAccess) {
    accessLong(gpa, true, value, privateAccess);
  }

  /** A multi-page access, one page at a time; the first page that exits stops it. */
  private VcpuExit accessBytes(long gpa, byte[] buf, int index, int len, boolean write, boolean privateAccess) {
    for (int done = 0; done < len; ) {
      long a = gpa + done;
      int chunk = (int) Math.min(len - done, Folio.PAGE_SIZE - (a & PAGE_MASK));
      int at = index + done;
      try {
        accessPage(a, chunk, write, privateAccess, 0, (addr, v) -> {
          if (write) {
            IO.putByteArray(addr, buf, at, chunk);
          } else {
            IO.getByteArray(addr, buf, at, chunk);
          }
          return 0;
        });
      } catch (MemoryExitException e) {
        return e.exit();
      }
      done += chunk;
    }
    return null;
  }

  /** 8 bytes: within a page, one page access; across pages, the multi-page way. */
  private long accessLong(long gpa, boolean write, long value, boolean privateAccess) {
    if ((gpa & PAGE_MASK) > Folio.PAGE_SIZE - Long.BYTES) {
      return accessLongAcrossPages(gpa, write, value, privateAccess);
    }
    if (write) {
      return accessPage(gpa, Long.BYTES, true, privateAccess, value, (addr, v) -> {
        Direct.putLong(addr, v);
        return 0;
      });
    }
    return accessPage(gpa, Long.BYTES, false, privateAccess, 0, (addr, v) -> Direct.getLong(addr));
  }

  private long accessLongAcrossPages(long gpa, boolean write, long value, boolean privateAccess) {
    ByteBuffer b = ByteBuffer.allocate(Long.BYTES).order(ByteOrder.LITTLE_ENDIAN).putLong(0, value);
    VcpuExit e = accessBytes(gpa, b.array(), 0, Long.BYTES, write, privateAccess);
    if (e != null) {
      throw new MemoryExitException(e);
    }
    return write ? 0 : b.getLong(0);
  }

  /**
   * What an access does at the guest-view address of its bytes, with the value to store (scalar
   * stores); returns the loaded value, or 0. The scalar accesses pass lambdas that capture
   * nothing, so the lock-free path allocates nothing.
   */
  @FunctionalInterface
  private interface Copy {
    long at(long address, long value);
  }

  /**
   * The one guest access path: {@code len} bytes at {@code gpa}, within one page. Memslot lookup
   * (none: an MMIO exit carrying {@code value}, the data of a store); then, if the file is open and
   * the inode's {@linkplain FastPageTable fast page table} maps the page for this access's bit,
   * {@code copy} at once, inside an {@link Rcu} read-side section (an invalidation zaps the entry
   * and waits for the section before it changes the page); else {@link #lockedAccessPage}. Returns
   * what {@code copy} returned; an exit is thrown as {@link MemoryExitException}. Kept small so
   * that it inlines.
   */
  private long accessPage(long gpa, int len, boolean write, boolean privateAccess, long value, Copy copy) {
    int section = Rcu.GLOBAL.enter();
    if (section >= 0) {
      try {
        // Loaded inside the section: a hint's window outlives only the sections that could load it (install).
        Hint hint = lastSlot; // non-null: the table at its generation, and vCPUs may run (see lastSlot)
        if (hint != null && hint.contains(gpa)) {
          long off = gpa + hint.fileDelta;
          if (hint.mapped(off, privateAccess)) {
            return copy.at(hint.viewBase + off, value);
          }
        }
      } finally {
        Rcu.exit(section);
      }
    }
    return accessPageSlow(gpa, len, write, privateAccess, value, copy);
  }

  /** {@link #accessPage} past the hint: a slot looked up, a large inode's page, or the fault. */
  private long accessPageSlow(long gpa, int len, boolean write, boolean privateAccess, long value, Copy copy) {
    vmAlive.run(); // a dead VM (KVM_BUG_ON, or its context moved away) keeps its fast-page entries: check here, not only when faulting
    Hint hint = lastSlot; // only its binding and generation are used here, both checked below
    MemslotTable.Binding slot = hint == null ? null : hint.binding;
    if (slot == null || hint.generation != memslots.generation() || !hint.contains(gpa)) {
      slot = lookup(gpa);
    }
    while (true) {
      if (slot == null) {
        throw new MemoryExitException(new VcpuExit.Mmio(gpa, write, len, value));
      }
      long off = slot.fileOffset(gpa);
      int section = Rcu.GLOBAL.enter();
      if (section >= 0) {
        try {
          // The fast page table is per inode and keyed by the access's own bit: a linked file
          // awaiting its context move takes no access another VM's fault installed. The slot's
          // window: a deleted slot retires it, waits for this section, then unmaps it.
          long[] plane = slot.file().guestPlane(privateAccess); // empty once the file is unreachable
          long page = off >>> Folio.PAGE_SHIFT;
          if (slot.window().isOpen() && (plane != null ? FastPageTable.isMapped(plane, page)
              : slot.file().guestReachable() && slot.fastPages().isGuestMapped(page, privateAccess))) {
            return copy.at(slot.viewBase() + off, value);
          }
        } finally {
          Rcu.exit(section);
        }
      }
      try {
        return lockedAccessPage(slot, gpa, off, write, privateAccess, value, copy);
      } catch (SlotDeleted e) {
        slot = lookup(gpa); // look the GPA up again
      }
    }
  }

  private MemslotTable.Binding lookup(long gpa) {
    long generation = memslots.generation(); // before the lookup: a change in between leaves the hint stale, never wrong
    MemslotTable.Binding slot = memslots.binding(gpa);
    Hint hint = lastSlot;
    if (slot != null && (hint == null || slot != hint.binding || generation != hint.generation)) {
      install(new Hint(slot, generation));
    }
    return slot;
  }

  /**
   * Publishes {@code hint} if the table is still at its generation and the vCPUs may run, inside a
   * read-side section. A deletion (or hold) moves the generation (or the state), clears the hint,
   * and then, for a deletion, waits for two grace periods before unmapping the window:
   * <ul>
   *   <li>A section the first grace period did not wait for began after the change was visible:
   *       its check fails and it writes nothing.
   *   <li>One it waited for may write after the clear, but then its check after the write (volatile
   *       write, then reads: either these see the change or the clear came after the write) clears
   *       the hint again before the section ends. So a stale hint lives only inside a section that
   *       ended before the first grace period did, and every access that loaded it began before that
   *       — which the second grace period waits for.
   * </ul>
   * Both rest on the lock-free paths loading the hint inside their section, not before it: a
   * thread preempted between loading a hint and entering its section is in no section, so no grace
   * period would wait for it, and it would load through a window that is gone (unmapped memory,
   * or another file's bytes once the address space is reused: on 6b99185, which loaded it before
   * entering, CI's JVM aborted in TeardownRaceTest, and SlotHintRaceTest fails).
   */
  private void install(Hint hint) {
    int section = Rcu.GLOBAL.enter();
    if (section < 0) {
      return; // no read-side cell for this thread: it never takes the lock-free path anyway
    }
    try {
      if (memslots.generation() == hint.generation && runnable.getAsBoolean()) {
        lastSlot = hint;
        if (memslots.generation() != hint.generation || !runnable.getAsBoolean()) {
          lastSlot = null;
        }
      }
    } finally {
      Rcu.exit(section);
    }
  }

  /** The slot was deleted while an access waited for the lock; never escapes {@link #accessPage}. */
  private static final class SlotDeleted extends RuntimeException {
    static final SlotDeleted INSTANCE = new SlotDeleted();

    private SlotDeleted() {
      super(null, null, false, false);
    }
  }

  /**
   * The slow path: under the inode's invalidate lock taken shared, the guest fault (which installs
   * the fast-page-table entry), then {@code copy} in the slot's window.
   */
  private long lockedAccessPage(MemslotTable.Binding slot, long gpa, long off, boolean write, boolean privateAccess,
      long value, Copy copy) {
    GuestMemInodeImpl inode = slot.inode();
    Lock lock = inode.invalidateLock().readLock();
    lock.lock();
    try {
      if (!slot.window().isOpen()) {
        throw SlotDeleted.INSTANCE;
      }
      VcpuExit exit = fault(slot.slot(), inode, gpa, off, write, privateAccess);
      if (exit != null) {
        throw new MemoryExitException(exit);
      }
      return copy.at(slot.viewBase() + off, value);
    } finally {
      lock.unlock();
    }
  }

  /**
   * The guest fault of an access whose own private bit is {@code accessBit}; its kind follows the
   * VM type's rule ({@link dev.gmem.core.inode.FaultPath#isPrivateAccess}).
   */
  private VcpuExit fault(Memslot slot, GuestMemInodeImpl inode, long gpa, long off, boolean write, boolean accessBit) {
    // Under the inode's lock, which a context move holds while it commits: no access of a VM
    // that just lost its context slips through.
    vmAlive.run();
    GuestMemFileImpl file = (GuestMemFileImpl) slot.file();
    long index = off >>> Folio.PAGE_SHIFT;
    boolean privateAccess = inode.faults().isPrivateAccess(inode.shareabilityStore().get(index), accessBit);
    if (privateAccess && file.awaitingContext()) {
      // A linked file before the context move: the private fault finds no pfn for this VM.
      return memoryFault(gpa, VcpuExit.MemoryFault.FLAG_PRIVATE);
    }
    if (!file.isOpen()) {
      // The kernel clears slot->gmem.file on release: the guest fault finds no pfn.
      return memoryFault(gpa, privateAccess ? VcpuExit.MemoryFault.FLAG_PRIVATE : 0);
    }
    long flags = inode.faults().guestFault(index, gpa >>> Folio.PAGE_SHIFT, gpa, write, accessBit, slot);
    return flags < 0 ? null : memoryFault(gpa, flags);
  }

  private static VcpuExit.MemoryFault memoryFault(long gpa, long flags) {
    return new VcpuExit.MemoryFault(flags, gpa & ~PAGE_MASK, Folio.PAGE_SIZE);
  }

  /** The page-table levels the MMU maps with (x86: 4 KiB, 2 MiB, 1 GiB), largest first. */
  private static final int[] LEVELS = {Folio.PUD_ORDER, Folio.PMD_ORDER, 0};

  @Override
  public int mappingOrder(long gpa, boolean privateAccess) {
    Memslot slot = memslots.lookup(gpa);
    if (slot == null) {
      return -1;
    }
    GuestMemInodeImpl inode = ((GuestMemFileImpl) slot.file()).inodeImpl();
    long index = slot.fileOffset(gpa) >>> Folio.PAGE_SHIFT;
    long gfn = gpa >>> Folio.PAGE_SHIFT;
    boolean kind = inode.faults().isPrivateAccess(inode.shareabilityStore().get(index), privateAccess);
    int max = inode.faults().mappingOrder(index, gfn, kind, slot);
    for (int level : LEVELS) {
      long n = 1L << level;
      long blockGpa = (gfn & -n) << Folio.PAGE_SHIFT;
      // disallow_lpage: the block must be aligned alike in GPA and file, and lie inside the slot.
      if (level <= max && ((gfn ^ index) & (n - 1)) == 0 && slot.containsGpa(blockGpa) && slot.containsGpa(blockGpa + (n << Folio.PAGE_SHIFT) - 1)) {
        return level;
      }
    }
    return 0;
  }
}
