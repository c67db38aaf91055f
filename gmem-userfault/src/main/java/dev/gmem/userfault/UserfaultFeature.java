package dev.gmem.userfault;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.spi.FaultInterceptor;
import dev.gmem.api.spi.Feature;
import dev.gmem.api.spi.FilemapListener;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.api.spi.GuestFault;
import dev.gmem.api.spi.KernelMemslot;
import dev.gmem.api.spi.HostMemory;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * KVM Userfault in user space: per-memslot bitmaps, the vCPU exit, the 4 KiB limit, the async
 * wait of host accesses, the installer. The real vCPU's faults reach {@link #guestFault} through
 * core's stage-2 view of slots with a feature flag (core zaps it when the flag is set and maps a
 * page back once this lets an access through), the software vCPU's directly.
 */
final class UserfaultFeature implements Feature, FaultInterceptor, FilemapListener, Userfault {
  private static final long PAGE = 4096;
  /** Whether the current thread is installing a page (its own accesses must not wait for it). */
  private static final ThreadLocal<Boolean> INSTALLING = ThreadLocal.withInitial(() -> false);

  private final HostMemory host;
  private final boolean kernelUserfault;
  private final String kernelProbe;
  private final FaultStats stats = new FaultStats();
  private final Map<SlotKey, Registration> bySlot = new ConcurrentHashMap<>();
  /** Bitmaps handed to the kernel for slots not yet created (pass-through), until {@link #bitmap} takes them. */
  private final Map<SlotKey, UserfaultBitmap> handedToKernel = new ConcurrentHashMap<>();
  /** Every registration, for host faults by inode page; replaced whole on change. */
  private volatile Registration[] all = new Registration[0];
  /** Serialises {@link #publish}es, so a slower one never brings back a registration removed meanwhile. */
  private final Object published = new Object();
  private final Map<Vm, Supervisor> supervisors = new ConcurrentHashMap<>();
  /** Deadlines of supervisors that set their own, read when they were attached. */
  private final Map<Supervisor, Long> supervisorDeadlines = new ConcurrentHashMap<>();
  /** Per thread: the page its last vCPU access exited on, and when (for the latency of the resolution). */
  private final ThreadLocal<long[]> exitedOn = ThreadLocal.withInitial(() -> new long[] {-1, 0});
  private volatile long deadlineNanos = Duration.ofSeconds(10).toNanos();

  UserfaultFeature(HostMemory host, KvmUserfaultProbe.Result probe) {
    this.host = host;
    this.kernelUserfault = probe.present();
    this.kernelProbe = probe.reason();
  }

  private record SlotKey(Vm vm, int slot) {}

  /**
   * A bitmap bound to a memslot's geometry, and the slot's stand-in for stage 2: the pages a vCPU
   * access mapped since the flag was last set ({@code mapped}), reset when the feature sees a new
   * epoch of the slot (a different {@link Memslot} record: the flag was cleared and set again).
   */
  private static final class Registration {
    final Vm vm;
    final int slot;
    final long gpa;
    final long pages;
    final long ino;
    final long fileOffset;
    final UserfaultBitmap bitmap;
    final dev.gmem.api.GuestMemFile file;
    volatile Memslot epoch;
    volatile AtomicLongArray mapped;

    Registration(Vm vm, Memslot m, UserfaultBitmap bitmap) {
      this.vm = vm;
      this.slot = m.slot();
      this.gpa = m.gpa();
      this.pages = m.size() / PAGE;
      this.ino = m.file().inode().ino();
      this.fileOffset = m.offset();
      this.bitmap = bitmap;
      this.file = m.file();
      this.mapped = new AtomicLongArray((int) ((pages + 63) >>> 6));
    }

    boolean sameGeometry(Memslot m) {
      return m.gpa() == gpa && m.size() / PAGE == pages && m.offset() == fileOffset && m.file().inode().ino() == ino;
    }

    boolean isMapped(long page) {
      return (mapped.get((int) (page >>> 6)) & (1L << page)) != 0;
    }

    void markMapped(long page) {
      mapped.getAndAccumulate((int) (page >>> 6), 1L << page, (a, b) -> a | b);
    }

    /** Slot pages {@code [from, to)} are no longer mapped (the inode's pages were invalidated). */
    void unmap(long from, long to) {
      AtomicLongArray m = mapped;
      for (long p = from; p < to; p++) {
        if ((m.get((int) (p >>> 6)) & (1L << p)) != 0) {
          m.getAndAccumulate((int) (p >>> 6), ~(1L << p), (a, b) -> a & b);
        }
      }
    }

    /** The stage-2 stand-in for slot record {@code m}: a new epoch starts with nothing mapped. */
    void enter(Memslot m) {
      if (epoch != m) {
        synchronized (this) {
          if (epoch != m) {
            mapped = new AtomicLongArray(mapped.length());
            epoch = m;
          }
        }
      }
    }
  }

  @Override
  public FaultInterceptor faultInterceptor() {
    return this;
  }

  /**
   * The pass-through: where the kernel itself accepts {@code KVM_MEM_USERFAULT} (probed by
   * behaviour), every slot's flag goes to the kernel with the slot's bitmap, and KVM produces the
   * exits of real vCPUs (no stage-2 view of gmem's for the slot). Null (gmem's own mechanism) where
   * it does not, as on 6.18.
   */
  @Override
  public synchronized KernelMemslot kernelMemslot(Vm vm, int slot, int flags, long size) {
    if (!kernelUserfault) {
      return null;
    }
    if ((flags & MEM_USERFAULT) == 0) {
      return new KernelMemslot(0, 0);
    }
    SlotKey key = new SlotKey(vm, slot);
    Registration r = bySlot.get(key);
    UserfaultBitmap b = r != null && r.pages == size / PAGE && r.bitmap.isOpen() ? r.bitmap
        : handedToKernel.computeIfAbsent(key, k -> new UserfaultBitmap(host, size / PAGE));
    if (b.pages() != size / PAGE) {
      b = new UserfaultBitmap(host, size / PAGE);
      handedToKernel.put(key, b);
    }
    return new KernelMemslot(MEM_USERFAULT, b.address());
  }

  @Override
  public FilemapListener filemapListener() {
    return this;
  }

  /**
   * The inode's pages {@code [start, end)} were invalidated (punch, conversion), which unmaps them
   * from stage 2: pages a vCPU access mapped since the flag was set are unmapped again, so their
   * next access meets the bitmap again (a set bit exits).
   */
  @Override
  public void invalidated(long ino, long flags, long start, long end) {
    for (Registration r : all) {
      if (r.ino != ino) {
        continue;
      }
      long first = r.fileOffset / PAGE;
      long from = Math.max(start, first) - first;
      long to = Math.min(end, first + r.pages) - first;
      if (from < to) {
        r.unmap(from, to);
      }
    }
  }

  // ---- API ------------------------------------------------------------------------------------

  @Override
  public synchronized UserfaultBitmap bitmap(Vm vm, int slot) {
    Memslot m = vm.memslots().stream().filter(s -> s.slot() == slot).findFirst()
        .orElseThrow(() -> GmemException.einval("VM has no memslot " + slot));
    SlotKey key = new SlotKey(vm, slot);
    Registration r = bySlot.get(key);
    if (r != null && r.sameGeometry(m) && r.bitmap.isOpen()) {
      return r.bitmap;
    }
    // A slot deleted and created anew gets a new bitmap; the old one stays mapped (a racing host
    // fault may still read it) until the runtime goes. One the kernel was given at the slot's
    // creation is the slot's.
    UserfaultBitmap given = handedToKernel.remove(key);
    Registration fresh = new Registration(vm, m, given != null && given.pages() == m.size() / PAGE ? given : new UserfaultBitmap(host, m.size() / PAGE));
    bySlot.put(key, fresh);
    publish();
    return fresh.bitmap;
  }

  private void publish() {
    synchronized (published) {
      all = bySlot.values().toArray(Registration[]::new);
    }
  }

  /**
   * The inode's last reference went: no memslot binds it any more (a slot holds a reference) and no
   * access can reach its pages again, so the bitmaps of the slots that bound it — in VMs since
   * closed, or slots since deleted — can go. Until then they stay: a page that never arrived must
   * not read as the fresh file's zeros through a mapping that outlived its VM.
   */
  @Override
  public void inodeEvicted(long ino, long flags) {
    List<Registration> gone = new ArrayList<>();
    bySlot.entrySet().removeIf(e -> {
      if (e.getValue().ino == ino) {
        gone.add(e.getValue());
        return true;
      }
      return false;
    });
    if (!gone.isEmpty()) {
      publish();
      gone.forEach(r -> r.bitmap.close());
    }
  }

  private Registration byGpa(Vm vm, long gpa) {
    for (Registration r : all) {
      if (r.vm == vm && Long.compareUnsigned(gpa - r.gpa, r.pages * PAGE) < 0) {
        return r;
      }
    }
    return null;
  }

  @Override
  public void install(Vm vm, long gpa, ByteBuffer page) {
    aligned(gpa);
    if (page.remaining() < PAGE) {
      throw GmemException.einval("a page is 4096 bytes, got " + page.remaining());
    }
    byte[] bytes = new byte[(int) PAGE];
    page.duplicate().get(bytes);
    fill(vm, gpa, bytes);
  }

  @Override
  public int installRun(Vm vm, long gpa, ByteBuffer pages) {
    int len = pages.remaining();
    if (len % PAGE != 0) {
      throw GmemException.einval("a run is whole 4096-byte pages, got " + len + " bytes");
    }
    int count = (int) (len / PAGE);
    aligned(gpa);
    Registration r = byGpa(vm, gpa);
    if (r == null || (gpa - r.gpa) % PAGE != 0 || (gpa - r.gpa) / PAGE + count > r.pages) {
      throw GmemException.einval("the run of " + count + " pages at GPA 0x" + Long.toHexString(gpa) + " is covered by no single userfault bitmap");
    }
    long first = (gpa - r.gpa) / PAGE;
    int installed = 0;
    for (int i = 0; i < count; ) {
      i += r.bitmap.runLength(first + i, count - i, false); // present: never overwritten
      if (i == count) {
        break;
      }
      int j = i + r.bitmap.runLength(first + i, count - i, true);
      long at = r.gpa + (first + i) * PAGE;
      long bytes = (j - i) * PAGE;
      INSTALLING.set(true);
      try {
        if (r.file.shareability(r.fileOffset + (first + i) * PAGE, bytes).equals(java.util.Optional.of(Shareability.SHARED))) {
          // one GPA-view write; from a direct buffer without a heap bounce
          vm.guestMemory().write(at, pages.duplicate().position(pages.position() + (int) (i * PAGE)).limit(pages.position() + (int) (j * PAGE)));
        } else {
          byte[] one = new byte[(int) PAGE];
          for (int k = i; k < j; k++) {
            pages.duplicate().position(pages.position() + (int) (k * PAGE)).get(one);
            installOne(vm, r, first + k, one, 0);
          }
        }
      } finally {
        INSTALLING.set(false);
      }
      r.bitmap.clearRange(first + i, first + j); // release, after the whole stretch's data
      installed += j - i;
      i = j;
    }
    return installed;
  }

  /** UFFDIO_COPY's rule: a page goes in at a page-aligned address (EINVAL otherwise, nothing installed). */
  private static void aligned(long gpa) {
    if ((gpa & (PAGE - 1)) != 0) {
      throw GmemException.einval("GPA 0x" + Long.toHexString(gpa) + " is not page aligned");
    }
  }

  /** One page of a run that is not all shared: as {@link #fill} writes it, the bit left to the caller. */
  private static void installOne(Vm vm, Registration r, long page, byte[] data, int off) {
    long at = r.gpa + page * PAGE;
    if (r.file.shareability(r.fileOffset + page * PAGE) == Shareability.PRIVATE) {
      VcpuExit refused = vm.softwareVcpu().write(at, data, off, (int) PAGE, true);
      if (refused != null) {
        throw new GmemException(Errno.EFAULT, "installing the private page at GPA 0x" + Long.toHexString(at) + ": " + refused);
      }
    } else {
      vm.guestMemory().write(at, data, off, (int) PAGE);
    }
  }

  @Override
  public void installZero(Vm vm, long gpa) {
    aligned(gpa);
    fill(vm, gpa, new byte[(int) PAGE]);
  }

  private void fill(Vm vm, long gpa, byte[] bytes) {
    Registration r = byGpa(vm, gpa);
    if (r == null) {
      throw GmemException.einval("GPA 0x" + Long.toHexString(gpa) + " is covered by no userfault bitmap");
    }
    long page = (gpa - r.gpa) / PAGE;
    if (!r.bitmap.isSet(page)) {
      throw new GmemException(Errno.EEXIST, "page at GPA 0x" + Long.toHexString(gpa) + " is present (its bit is clear)");
    }
    long at = r.gpa + page * PAGE;
    INSTALLING.set(true);
    try {
      if (r.file.shareability(r.fileOffset + page * PAGE) == Shareability.PRIVATE) {
        // Private content goes in the way the guest's own private store would, never through a
        // host view of private memory (which gmem refuses anyway).
        VcpuExit refused = vm.softwareVcpu().write(at, bytes, 0, bytes.length, true);
        if (refused != null) {
          throw new GmemException(Errno.EFAULT, "installing the private page at GPA 0x" + Long.toHexString(at) + ": " + refused);
        }
      } else {
        vm.guestMemory().write(at, bytes, 0, bytes.length);
      }
    } finally {
      INSTALLING.set(false);
    }
    r.bitmap.clear(page); // release: the data above is visible to whoever sees the bit clear
  }

  @Override
  public void await(Vm vm, long gpa) {
    Registration r = byGpa(vm, gpa);
    if (r == null) {
      throw GmemException.einval("GPA 0x" + Long.toHexString(gpa) + " is covered by no userfault bitmap");
    }
    long bit = (gpa - r.gpa) / PAGE;
    if (r.bitmap.isSet(bit)) {
      await(r, bit, FaultSource.VCPU_USERFAULT);
    }
  }

  @Override
  public boolean isMissing(Vm vm, long gpa) {
    Registration r = byGpa(vm, gpa);
    return r != null && r.bitmap.isSet((gpa - r.gpa) / PAGE);
  }

  @Override
  public Duration deadline() {
    return Duration.ofNanos(deadlineNanos);
  }

  @Override
  public void deadline(Duration deadline) {
    if (deadline.isNegative() || deadline.isZero()) {
      throw GmemException.einval("deadline must be positive: " + deadline);
    }
    deadlineNanos = deadline.toNanos();
  }

  @Override
  public void supervise(Vm vm, Supervisor supervisor) {
    if (supervisor == null) {
      Supervisor gone = supervisors.remove(vm);
      if (gone != null) {
        supervisorDeadlines.remove(gone);
      }
    } else {
      Duration own = supervisor.deadline();
      if (own != null && (own.isNegative() || own.isZero())) {
        throw GmemException.einval("a supervisor's deadline must be positive: " + own);
      }
      Supervisor held = supervisors.putIfAbsent(vm, supervisor);
      if (held != null && held != supervisor) {
        throw new GmemException(Errno.EBUSY, "the VM's missing pages already have a supervisor (a page server, open or failed): close it first");
      }
      if (own != null) {
        supervisorDeadlines.put(supervisor, own.toNanos());
      }
    }
    for (Registration r : all) {
      if (r.vm == vm) {
        r.bitmap.wakeAll();
      }
    }
  }

  @Override
  public FaultStats stats() {
    return stats;
  }

  @Override
  public boolean kernelUserfault() {
    return kernelUserfault;
  }

  @Override
  public String kernelUserfaultProbe() {
    return kernelProbe;
  }

  // ---- vCPU faults ------------------------------------------------------------------------------

  @Override
  public long guestFault(GuestFault fault) {
    Memslot slot = fault.slot();
    if (slot == null || (slot.flags() & MEM_USERFAULT) == 0 || INSTALLING.get()) { // INSTALLING: the installer's own private write
      return 0;
    }
    Registration r = bySlot.get(new SlotKey(fault.vm(), slot.slot()));
    if (r == null || !r.sameGeometry(slot)) {
      return 0; // no bitmap given: no bit is set
    }
    r.enter(slot);
    long page = (fault.gpa() - slot.gpa()) / PAGE;
    long pageGpa = slot.gpa() + page * PAGE;
    long[] last = exitedOn.get();
    if (r.isMapped(page)) {
      return 0; // KVM mapped it since the flag was set: later bits do not affect it
    }
    if (r.bitmap.isSet(page)) {
      if (last[0] != pageGpa) {
        last[0] = pageGpa;
        last[1] = System.nanoTime();
        Supervisor s = supervisors.get(fault.vm());
        if (s != null) {
          s.demanded(pageGpa, FaultSource.VCPU_USERFAULT);
        }
      }
      return EXIT_FLAG_USERFAULT;
    }
    if (last[0] == pageGpa) {
      stats.resolved(FaultSource.VCPU_USERFAULT, Thread.currentThread().getName(), pageGpa, System.nanoTime() - last[1]);
      last[0] = -1;
    }
    r.markMapped(page);
    return 0;
  }

  /**
   * Bitmaps count only while a memslot has USERFAULT (v3), so accesses to memory no such slot binds
   * keep core's lock-free path once one went through here; setting the flag takes them off it. A
   * page a host access already reached stays reachable when its bit is set again later, as a
   * present PTE takes no userfault: punch it (or set the flag anew) to make it missing.
   */
  @Override
  public int accessMemslotFlags() {
    return MEM_USERFAULT;
  }

  @Override
  public int maxMappingOrder(GuestFault fault) {
    return fault.slot() != null && (fault.slot().flags() & MEM_USERFAULT) != 0 ? 0 : 18;
  }

  // ---- non-vCPU accesses: async userfault --------------------------------------------------------

  @Override
  public void hostFault(GmemPage page, boolean write) {
    if (INSTALLING.get()) {
      return;
    }
    long offset = page.offset();
    for (Registration r : all) {
      if (r.ino == page.ino() && Long.compareUnsigned(offset - r.fileOffset, r.pages * PAGE) < 0) {
        long bit = (offset - r.fileOffset) / PAGE;
        if (r.bitmap.isSet(bit)) {
          await(r, bit, FaultSource.ASYNC);
        }
      }
    }
  }

  @Override
  public void pin(GmemPage first, long nrPages) {
    for (long i = 0; i < nrPages; i++) {
      hostFault(first.plus(i), true);
    }
  }

  private void await(Registration r, long bit, FaultSource source) {
    long gpa = r.gpa + bit * PAGE;
    long t0 = System.nanoTime();
    Supervisor s = supervisors.get(r.vm);
    if (s != null) {
      String failed = s.failure();
      if (failed != null) {
        stats.failed();
        throw new GmemException(Errno.EIO, "userfault: page at GPA 0x" + Long.toHexString(gpa) + " is missing and cannot arrive: " + failed);
      }
      s.demanded(gpa, source);
    }
    long limit = s == null ? deadlineNanos : supervisorDeadlines.getOrDefault(s, deadlineNanos);
    boolean clear;
    try {
      clear = r.bitmap.awaitClear(bit, t0 + limit, () -> s != null && s.failure() != null);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new GmemException(Errno.EINTR, "userfault: interrupted waiting for the page at GPA 0x" + Long.toHexString(gpa));
    }
    if (!clear) {
      stats.failed();
      String failed = s == null ? null : s.failure();
      if (failed == null && s != null) {
        s.stalled(gpa);
        failed = s.failure();
      }
      throw new GmemException(Errno.EIO, "userfault: page at GPA 0x" + Long.toHexString(gpa) + " not resolved within "
          + Duration.ofNanos(limit) + (failed != null ? ": " + failed : ""));
    }
    if (source == FaultSource.ASYNC) { // a vCPU's resolution is counted when its access goes through
      stats.resolved(source, Thread.currentThread().getName(), gpa, System.nanoTime() - t0);
    }
  }

  /** Bitmaps of VMs that are gone (runtime close). */
  void closeAll() {
    List<Registration> regs = new ArrayList<>(bySlot.values());
    bySlot.clear();
    publish();
    regs.forEach(r -> r.bitmap.close());
    handedToKernel.values().forEach(UserfaultBitmap::close);
    handedToKernel.clear();
  }
}
