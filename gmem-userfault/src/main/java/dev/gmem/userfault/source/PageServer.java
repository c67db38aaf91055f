package dev.gmem.userfault.source;

import dev.gmem.api.Api;
import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.userfault.FaultSource;
import dev.gmem.userfault.Userfault;
import dev.gmem.userfault.UserfaultBitmap;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.zip.CRC32C;

/**
 * Serves a VM's missing pages from a {@link PageSource} and supervises it: every memslot gets a
 * userfault bitmap with every bit set (all pages missing) and {@link Userfault#MEM_USERFAULT};
 * faults that meet a set bit request their page urgently; delivered pages are checked (CRC32C)
 * and installed, data first, bit cleared after. If the source fails or a fault waits out the
 * deadline, the VM is {@linkplain #paused() paused} for good: {@link #run} refuses to enter the
 * guest again and every waiting access fails with EIO. A missing page is never replaced by zeros;
 * a known-zero page comes as its own message.
 *
 * <p>The order in which pages were first demanded ({@link #demandOrder()}) is the working set of
 * this run: give it to the next restore's {@link #prefetch} and those pages come first.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public final class PageServer implements PageSink, Userfault.Supervisor, AutoCloseable {
  private static final long PAGE = 4096;

  private final Userfault userfault;
  private final Vm vm;
  private final PageSource source;
  private final java.time.Duration deadline;
  private final List<UserfaultBitmap> bitmaps = new ArrayList<>();
  private final List<Memslot> slots;
  private final long totalPages;
  private final Set<Long> demanded = Collections.synchronizedSet(new LinkedHashSet<>());
  private volatile String failure;
  /**
   * One install per page at a time: sinks are called from any thread, and a second copy that
   * checked the bit before the first cleared it would otherwise overwrite what was written since.
   */
  private final Object[] installing = new Object[256];

  private PageServer(Userfault userfault, Vm vm, PageSource source, List<Memslot> slots) {
    this.userfault = userfault;
    this.vm = vm;
    this.source = source;
    this.deadline = source.faultDeadline(); // asked once: the supervisor's deadline is read when it is attached
    if (deadline != null && (deadline.isNegative() || deadline.isZero())) {
      throw dev.gmem.api.GmemException.einval("a page source's fault deadline must be positive: " + deadline);
    }
    this.slots = List.copyOf(slots);
    this.totalPages = slots.stream().mapToLong(m -> m.size() / PAGE).sum();
    for (int i = 0; i < installing.length; i++) {
      installing[i] = new Object();
    }
  }

  private Object stripe(long gfn) {
    return installing[(int) (gfn & (installing.length - 1))];
  }

  /** Runs {@code install} holding the stripes of GFNs {@code [first, first+count)}, taken in index order (no deadlock). */
  private void underStripes(long first, int count, Runnable install) {
    boolean[] need = new boolean[installing.length];
    for (int i = 0; i < count && i < installing.length; i++) {
      need[(int) ((first + i) & (installing.length - 1))] = true;
    }
    lockFrom(0, need, install);
  }

  private void lockFrom(int i, boolean[] need, Runnable install) {
    while (i < need.length && !need[i]) {
      i++;
    }
    if (i == need.length) {
      install.run();
      return;
    }
    synchronized (installing[i]) {
      lockFrom(i + 1, need, install);
    }
  }

  /**
   * Marks every page of {@code vm}'s memslots missing, sets USERFAULT on each slot (the late toggle),
   * and starts {@code source}: the VM may run at once. EBUSY when another page server supervises
   * {@code vm} (open, or failed: a paused VM stays paused) — a second one would mark pages missing
   * that the first made present and overwrite what the guest wrote since. A failed start (the
   * source refused to start, a memslot refused the flag) leaves bits, flags and supervision as
   * they were.
   */
  public static PageServer start(Userfault userfault, Vm vm, PageSource source) {
    return start(userfault, vm, source, vm.memslots());
  }

  /**
   * {@link #start(Userfault, Vm, PageSource)} for {@code lazy}, some of {@code vm}'s memslots; the
   * others hold their content already and are left alone.
   */
  public static PageServer start(Userfault userfault, Vm vm, PageSource source, List<Memslot> lazy) {
    return start(userfault, vm, source, lazy, List.of());
  }

  /**
   * {@link #start(Userfault, Vm, PageSource, List)} with {@code prefetch} (a previous run's
   * {@link #demandOrder()}) hinted to the source before it starts, so that the working set comes
   * before any background fill, in its recorded order.
   */
  public static PageServer start(Userfault userfault, Vm vm, PageSource source, List<Memslot> lazy, List<Long> prefetch) {
    PageServer s = new PageServer(userfault, vm, source, lazy);
    userfault.supervise(vm, s); // EBUSY before anything changes
    List<BitSet> setBefore = new ArrayList<>();
    List<Memslot> flagged = new ArrayList<>();
    try {
      for (Memslot m : s.slots) {
        UserfaultBitmap b = userfault.bitmap(vm, m.slot());
        setBefore.add(setBits(b));
        s.bitmaps.add(b);
        b.setAll();
        if ((m.flags() & Userfault.MEM_USERFAULT) == 0) {
          vm.setMemoryRegion(m.slot(), m.flags() | Userfault.MEM_USERFAULT, m.gpa(), m.size(), m.file(), m.offset());
          flagged.add(m);
        }
      }
      s.prefetch(prefetch); // hinted before the source starts: the working set goes before any background fill
      source.start(s);
      return s;
    } catch (RuntimeException e) {
      s.undoStart(setBefore, flagged, e);
      throw e;
    }
  }

  /** The pages whose bit is set in {@code b} (usually none: then no per-page walk). */
  private static BitSet setBits(UserfaultBitmap b) {
    BitSet set = new BitSet();
    if (b.countSet() != 0) {
      for (long p = 0; p < b.pages(); p++) {
        if (b.isSet(p)) {
          set.set(Math.toIntExact(p));
        }
      }
    }
    return set;
  }

  /** A failed start: flags first (no userfault exits from then on), then the bits, then supervision. */
  private void undoStart(List<BitSet> setBefore, List<Memslot> flagged, RuntimeException cause) {
    for (Memslot m : flagged) {
      try {
        vm.setMemoryRegion(m.slot(), m.flags(), m.gpa(), m.size(), m.file(), m.offset());
      } catch (RuntimeException e) {
        cause.addSuppressed(e);
      }
    }
    for (int i = 0; i < bitmaps.size(); i++) {
      UserfaultBitmap b = bitmaps.get(i);
      BitSet before = setBefore.get(i);
      for (long p = 0; p < b.pages(); p++) {
        if (p > Integer.MAX_VALUE || !before.get((int) p)) {
          b.clear(p);
        }
      }
    }
    userfault.supervise(vm, null);
  }

  /** Hints {@code gfns} (a previous run's {@link #demandOrder()}) to the source, in order, ahead of the background fill. */
  public void prefetch(List<Long> gfns) {
    for (long g : gfns) {
      source.request(g, false);
    }
  }

  /**
   * Runs {@code vcpu} until an exit other than a USERFAULT memory fault: each of those waits for
   * its page (at most the deadline) and enters the guest again. EIO once paused.
   */
  public VcpuExit run(Vcpu vcpu) {
    while (true) {
      checkRunnable();
      VcpuExit exit = vcpu.run();
      if (exit instanceof VcpuExit.MemoryFault f && (f.flags() & Userfault.EXIT_FLAG_USERFAULT) != 0) {
        userfault.await(vm, f.gpa());
        continue;
      }
      return exit;
    }
  }

  private void checkRunnable() {
    String f = failure;
    if (f != null) {
      throw new GmemException(Errno.EIO, "VM paused: missing pages cannot arrive (" + f + ")");
    }
  }

  /** Whether the VM is paused for good (the source failed or stalled). */
  public boolean paused() {
    return failure != null;
  }

  @Override
  public String failure() {
    return failure;
  }

  /** Pages present now. */
  public long residentPages() {
    long missing = 0;
    for (UserfaultBitmap b : bitmaps) {
      missing += b.countSet();
    }
    return totalPages - missing;
  }

  public long totalPages() {
    return totalPages;
  }

  /** Whether every page is present. */
  public boolean complete() {
    return residentPages() == totalPages;
  }

  /** A one-line progress report. */
  public String progress() {
    long r = residentPages();
    return String.format("restore: %d/%d pages resident (%.1f%%), %d demand-faulted%s", r, totalPages,
        totalPages == 0 ? 100.0 : 100.0 * r / totalPages, demanded.size(), failure != null ? ", PAUSED: " + failure : "");
  }

  /** GFNs in the order faults first demanded them: this run's working set. */
  public List<Long> demandOrder() {
    synchronized (demanded) {
      return List.copyOf(demanded);
    }
  }

  // ---- supervisor ---------------------------------------------------------------------------

  @Override
  public void demanded(long gpa, FaultSource from) {
    long gfn = gpa / PAGE;
    if (failure == null && demanded.add(gfn)) {
      source.request(gfn, true);
    } else if (failure == null) {
      source.request(gfn, true);
    }
  }

  @Override
  public void stalled(long gpa) {
    fail("page source stalled: GPA 0x" + Long.toHexString(gpa) + " not served within " + (deadline != null ? deadline : userfault.deadline()));
  }

  /** The source's {@link PageSource#faultDeadline()}, or null for the runtime's. */
  @Override
  public java.time.Duration deadline() {
    return deadline;
  }

  private synchronized void fail(String why) {
    if (failure == null) {
      failure = why;
      userfault.supervise(vm, this); // wakes every waiter to see it
    }
  }

  // ---- sink ------------------------------------------------------------------------------------

  @Override
  public void page(long gfn, ByteBuffer data, int crc32c) {
    if (failure != null) {
      return;
    }
    CRC32C crc = new CRC32C();
    ByteBuffer d = data.duplicate();
    d.limit(d.position() + (int) PAGE);
    crc.update(d.duplicate());
    if ((int) crc.getValue() != crc32c) {
      fail("CRC32C mismatch for GFN 0x" + Long.toHexString(gfn));
      return;
    }
    try {
      synchronized (stripe(gfn)) {
        userfault.install(vm, gfn * PAGE, d);
      }
    } catch (GmemException e) {
      if (e.errno() != Errno.EEXIST) {
        fail("installing GFN 0x" + Long.toHexString(gfn) + ": " + e.getMessage());
      }
    }
  }

  /**
   * A run of pages (hints, background fill): every CRC checked first (a mismatch fails the source,
   * nothing of the run installed), then one {@link Userfault#installRun}, which skips pages already
   * present; page by page where no single memslot holds the run.
   */
  @Override
  public void pages(long firstGfn, ByteBuffer data, int[] crc32c) {
    if (failure != null) {
      return;
    }
    CRC32C crc = new CRC32C();
    for (int i = 0; i < crc32c.length; i++) {
      int at = data.position() + i * (int) PAGE;
      crc.reset();
      crc.update(data.duplicate().position(at).limit(at + (int) PAGE));
      if ((int) crc.getValue() != crc32c[i]) {
        fail("CRC32C mismatch for GFN 0x" + Long.toHexString(firstGfn + i));
        return;
      }
    }
    ByteBuffer d = data.duplicate();
    d.limit(d.position() + crc32c.length * (int) PAGE);
    try {
      underStripes(firstGfn, crc32c.length, () -> userfault.installRun(vm, firstGfn * PAGE, d));
    } catch (GmemException e) {
      if (e.errno() == Errno.EINVAL) {
        PageSink.super.pages(firstGfn, data, crc32c); // the run crosses memslots
      } else {
        fail("installing GFNs 0x" + Long.toHexString(firstGfn) + "+" + crc32c.length + ": " + e.getMessage());
      }
    }
  }

  @Override
  public void zero(long gfn) {
    if (failure != null) {
      return;
    }
    try {
      synchronized (stripe(gfn)) {
        userfault.installZero(vm, gfn * PAGE);
      }
    } catch (GmemException e) {
      if (e.errno() != Errno.EEXIST) {
        fail("installing zero GFN 0x" + Long.toHexString(gfn) + ": " + e.getMessage());
      }
    }
  }

  @Override
  public void failed(String reason) {
    fail(reason);
  }

  @Override
  public boolean missing(long gfn) {
    return userfault.isMissing(vm, gfn * PAGE);
  }

  /** Stops the source and detaches; pages still missing stay missing (and their faults fail at the deadline). */
  @Override
  public void close() {
    source.close();
    boolean complete;
    try {
      complete = complete();
    } catch (GmemException e) {
      complete = false; // the bitmaps went with the VM's memory (runtime closed first): nothing left to count
    }
    if (failure == null && !complete) {
      fail("page server closed");
    } else if (failure == null) {
      userfault.supervise(vm, null);
    }
  }
}
