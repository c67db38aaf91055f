package dev.gmem.core.spi;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GuestCall;
import dev.gmem.api.Shareability;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.spi.ArchContext;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.Conversion;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.api.spi.GuestFault;
import dev.gmem.api.spi.Prepared;
import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A fixture arch that uses every 0.2 hook the way a firmware model does: per-page "firmware"
 * entries keyed by {@link GmemPage} (assigned with a page size, like an RMP), a veto on chosen
 * pages, reclaim failures that leak and optionally kill the VM, busy-page parking with a drain
 * log, a launch state with a measured, budgeted populate, a host-faultability verdict of its own,
 * and a guest MAP_GPA_RANGE protocol that exits in chunks (as TDX does per 2 MiB). Reached by
 * tests through {@code vm.arch(FixtureArch.class)}.
 */
public final class FixtureArch implements ArchHooks {
  /** The populate flag that asks for measurement. */
  public static final long MEASURE = 1;
  /** Pages per MAP_GPA_RANGE exit. */
  public static final long CHUNK_PAGES = 2;
  /** The guest call that accepts a pending private page (TDX: TDG.MEM.PAGE.ACCEPT), args = gpa. */
  public static final long ACCEPT = 0x1000;
  /** Guest-visible status when the VMM refused a chunk (TDX: INVALID_OPERAND). */
  public static final long INVALID_OPERAND = 0x8000_0000_0000_0000L;

  /** A firmware page entry: the guest frame it was assigned at and its page size (order). */
  public record Entry(long gfn, int order) {}

  private final ArchContext vm;
  private final Map<GmemPage, Entry> assigned = new ConcurrentHashMap<>();
  private final Set<GmemPage> unreclaimable = ConcurrentHashMap.newKeySet();
  private final Set<GmemPage> hostDenied = ConcurrentHashMap.newKeySet();
  private final Map<GmemPage, Errno> vetoes = new ConcurrentHashMap<>();
  private final List<String> events = Collections.synchronizedList(new ArrayList<>());
  private final MessageDigest measurement;
  private volatile boolean bugOnReclaimFailure;
  private volatile BusyPolicy busyPolicy = BusyPolicy.EAGAIN;
  private volatile long populateBudget = Long.MAX_VALUE;
  private long populatedThisCall;
  private volatile boolean launched;
  private volatile boolean acceptRequired;
  private final Set<Long> pendingGfns = ConcurrentHashMap.newKeySet();

  public FixtureArch(ArchContext vm) {
    this.vm = vm;
    try {
      this.measurement = MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  // ---- configuration and inspection -----------------------------------------------------

  /** The firmware entry of {@code page}, or null when it is not assigned. */
  public Entry entry(GmemPage page) {
    return assigned.get(page);
  }

  /** Reclaiming {@code page} will fail: it leaks, and with {@code bug} the VM dies. */
  public void failReclaim(GmemPage page, boolean bug) {
    unreclaimable.add(page);
    bugOnReclaimFailure = bug;
  }

  /** A conversion run holding {@code page} is refused with {@code errno}. */
  public void veto(GmemPage page, Errno errno) {
    vetoes.put(page, errno);
  }

  /** The host may not fault {@code page}, whatever its shareability (pKVM's last word). */
  public void denyHost(GmemPage page) {
    hostDenied.add(page);
  }

  public void busyPolicy(BusyPolicy policy) {
    this.busyPolicy = policy;
  }

  /** At most {@code pages} per populate call; the caller resumes. */
  public void populateBudget(long pages) {
    this.populateBudget = pages;
  }

  /** From now on prepared pages are pending until the guest accepts them (a #VE before that). */
  public void requireAccept() {
    acceptRequired = true;
  }

  public boolean launched() {
    return launched;
  }

  /** The launch digest so far (SHA-256 over gfn and contents of each measured page). */
  public synchronized byte[] measurement() {
    try {
      return ((MessageDigest) measurement.clone()).digest();
    } catch (CloneNotSupportedException e) {
      throw new IllegalStateException(e);
    }
  }

  /** Every hook call, in order, as "hook detail". */
  public List<String> events() {
    synchronized (events) {
      return List.copyOf(events);
    }
  }

  private void event(String hook, Object detail) {
    events.add(hook + " " + detail);
  }

  // ---- hooks ------------------------------------------------------------------------------

  @Override
  public boolean hasPrivateMemory() {
    return true;
  }

  @Override
  public boolean supportsInitShared() {
    return true;
  }

  @Override
  public void prepare(GmemPage first, long gfn, int order) {
    event("prepare", first + " order " + order);
    for (long i = 0; i < 1L << order; i++) {
      assigned.put(first.plus(i), new Entry(gfn + i, order));
      if (acceptRequired) {
        pendingGfns.add(gfn + i);
      }
    }
  }

  @Override
  public VcpuExit.GuestException guestAccess(GuestFault access) {
    long gfn = access.gpa() >>> 12;
    return access.isPrivate() && pendingGfns.contains(gfn) ? new VcpuExit.GuestException(VcpuExit.GuestException.VE, 0, access.gpa()) : null;
  }

  @Override
  public void invalidate(GmemPage first, long nrPages) {
    event("invalidate", first + " +" + nrPages);
    for (long i = 0; i < nrPages; i++) {
      GmemPage p = first.plus(i);
      if (unreclaimable.contains(p)) {
        vm.leak(p, 1, "fixture firmware refused to reclaim " + p);
        if (bugOnReclaimFailure) {
          vm.bug("fixture reclaim failure at " + p);
        }
      } else {
        assigned.remove(p);
      }
    }
  }

  @Override
  public ContentEffect contentEffect(Shareability from, Shareability to) {
    return from == Shareability.PRIVATE ? ContentEffect.ZERO : ContentEffect.PRESERVE;
  }

  @Override
  public Prepared prepareConversion(Conversion run) {
    event("prepareConversion", run);
    for (long i = 0; i < run.nrPages(); i++) {
      Errno e = vetoes.get(run.first().plus(i));
      if (e != null) {
        throw new GmemException(e, "fixture firmware refuses " + run);
      }
    }
    return new Prepared() {
      @Override
      public void commit() {
        event("commit", run);
      }

      @Override
      public void abort() {
        event("abort", run);
      }
    };
  }

  @Override
  public BusyPolicy busyReferences(Conversion run) {
    event("busyReferences", run);
    return busyPolicy;
  }

  @Override
  public void drained(GmemPage first, long nrPages) {
    event("drained", first + " +" + nrPages);
  }

  @Override
  public synchronized void validatePopulate(long gpa, long npages, long flags, boolean inPlace) {
    if (launched) {
      throw GmemException.einval("the fixture VM is launched: no more populate");
    }
    if ((flags & ~MEASURE) != 0) {
      throw GmemException.einval("unknown fixture populate flags 0x" + Long.toHexString(flags));
    }
    populatedThisCall = 0;
  }

  @Override
  public synchronized boolean postPopulate(GmemPage page, long gfn, ByteBuffer source, ByteBuffer target, long flags) {
    if (populatedThisCall == populateBudget) {
      return false;
    }
    if (source != null) {
      target.put(source.duplicate());
    }
    if ((flags & MEASURE) != 0) {
      measurement.update(ByteBuffer.allocate(8).putLong(0, gfn));
      measurement.update(target.duplicate().clear());
    }
    assigned.put(page, new Entry(gfn, 0));
    populatedThisCall++;
    event("postPopulate", page);
    return true;
  }

  @Override
  public void finalizeLaunch() {
    if (launched) {
      throw GmemException.einval("the fixture VM is already launched");
    }
    launched = true;
  }

  /** From the firmware entry: private pages map at most at the size they were assigned with. */
  @Override
  public int maxMappingOrder(GmemPage page, long gfn, boolean isPrivate) {
    Entry e = assigned.get(page);
    return !isPrivate ? 18 : e == null ? 0 : e.order();
  }

  @Override
  public boolean hostMayFault(GmemPage page, Shareability shareability) {
    return shareability == Shareability.SHARED && !hostDenied.contains(page);
  }

  @Override
  public GuestCall guestCall(long nr, long[] args) {
    if (nr == ACCEPT) {
      return GuestCall.finished(new GuestCall.Result(pendingGfns.remove(args[0] >>> 12) ? 0 : 1));
    }
    if (nr != VcpuExit.Hypercall.MAP_GPA_RANGE || args.length < 3 || args[1] <= 0 || (args[0] & 0xfff) != 0) {
      return ArchHooks.super.guestCall(nr, args);
    }
    return new ChunkedMapGpa(args[0], args[1], args[2]);
  }

  /** MAP_GPA_RANGE in chunks of {@link #CHUNK_PAGES}; a non-zero VMM answer stops with the failing GPA. */
  private static final class ChunkedMapGpa implements GuestCall {
    private final long gpa;
    private final long npages;
    private final long attributes;
    private long done;
    private Result result;

    ChunkedMapGpa(long gpa, long npages, long attributes) {
      this.gpa = gpa;
      this.npages = npages;
      this.attributes = attributes;
    }

    @Override
    public VcpuExit.Hypercall pendingExit() {
      return result != null ? null : VcpuExit.Hypercall.mapGpaRange(gpa + done * 4096, Math.min(CHUNK_PAGES, npages - done), attributes);
    }

    @Override
    public void complete(long ret) {
      if (result != null) {
        throw new IllegalStateException("no hypercall exit is pending");
      }
      if (ret != 0) {
        result = new Result(INVALID_OPERAND, new long[] {gpa + done * 4096});
        return;
      }
      done = Math.min(npages, done + CHUNK_PAGES);
      if (done == npages) {
        result = new Result(0, new long[] {gpa + npages * 4096});
      }
    }

    @Override
    public Result result() {
      if (result == null) {
        throw new IllegalStateException("the VMM has not completed the call");
      }
      return result;
    }
  }
}
