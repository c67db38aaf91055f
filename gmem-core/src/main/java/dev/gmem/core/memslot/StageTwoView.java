package dev.gmem.core.memslot;

import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.MapFlags;
import dev.gmem.api.Prot;
import dev.gmem.core.inode.GuestMappings;
import dev.gmem.core.inode.GuestMemInodeImpl;
import dev.gmem.core.sys.Mapping;
import dev.gmem.core.sys.Sys;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.locks.StampedLock;

/**
 * The kernel's view of a memslot whose flags include a bit a feature gives meaning to (KVM
 * Userfault's {@code KVM_MEM_USERFAULT}): a mapping of the slot's file range of its own, given to
 * the kernel as {@code userspace_addr}, that stands in for the slot's stage-2 mappings. A host that
 * serves guest faults through {@code userspace_addr} (kernel-uapi §4.9, this project's shadow
 * paging) cannot map a page gmem keeps {@code PROT_NONE} here: a data access comes back as MMIO
 * inside the slot and an instruction fetch as an emulation failure, and gmem's fault path
 * ({@link dev.gmem.core.vcpu.GuestFaultingVcpu}) decides — with the features' interceptors — and
 * "maps" the page by making it accessible again.
 *
 * <p>Setting a feature flag zaps: every page is made inaccessible, so each page's next guest access
 * is a fault gmem sees, as enabling the flag zaps stage 2 upstream. Clearing every feature flag
 * maps the whole range again (x86 rebuilds eagerly). Nobody but the kernel touches this mapping,
 * so no Java thread can fault on it. Only the kernel's view of 4 KiB memory is kept this way; a
 * hugetlb slot cannot be zapped below its page size and keeps gmem's window.
 *
 * <p>How a page is made inaccessible: with guard markers ({@code MADV_GUARD_INSTALL}, Linux 6.13,
 * shared file mappings from 6.15) where the kernel takes them on this view (probed by behaviour when
 * the view is created), else {@code mprotect(PROT_NONE)}. Both make the kernel's own accesses
 * through {@code userspace_addr} fail ({@code get_user_pages} and the emulator's copies get EFAULT),
 * but a guard marker is placed and removed under the mmap lock held <em>shared</em> and never splits
 * the VMA, while every {@code mprotect} takes it exclusively — and so, once per resolved userfault,
 * stalled every other vCPU thread's KVM fault (which takes it shared) behind it. Setting the flag
 * zaps with markers and a map-back removes one; an invalidation zaps with {@code PROT_NONE} as
 * well, because the punch that follows drops the markers over a folio mapped elsewhere
 * (truncation zaps with {@code ZAP_FLAG_DROP_MARKER}), and such a page's map-back lifts both.
 *
 * <p>While a feature flag is set, an invalidation of the inode's pages (punch, conversion) zaps
 * the pages of it this view covers again, as {@code kvm_gmem_invalidate_begin} unmaps stage 2, so
 * the next guest access to a punched or converted page faults — and exits again if its userfault
 * bit is set. A map-back decided before such an invalidation does not happen ({@link #sequence}).
 *
 * <p>Where the arch's private bit is a GPA bit (TDX's shared bit) the view is the slot's
 * <em>private</em> stage 2 ({@link #privateStageTwo}): the kernel sees the slot at GPAs without the
 * bit, which are private accesses, so a page is mapped only once gmem's fault path let a private
 * access to it through (private, accepted), and every invalidation of the inode's pages (punch,
 * conversion) zaps it again, as KVM zaps the S-EPT — whatever the feature flags. Shared pages are
 * never mapped: a private access to one comes back and becomes the rule's memory fault; shared
 * accesses carry the bit and are outside every memslot the kernel knows, so they come back too.
 */
public final class StageTwoView implements GuestMappings, AutoCloseable {
  private final Sys sys;
  private final Mapping mapping;
  private final long pages;
  private final GuestMemInodeImpl inode;
  /** File page of the view's first page. */
  private final long firstPage;
  /**
   * Map-backs take it shared, so vCPU threads mapping different pages never wait for each other
   * in Java (one monitor held across every vCPU's {@code mprotect} made 4 faulting vCPUs queue
   * behind each other's system call); zaps and invalidations take it exclusively, so a map-back
   * never lands between an invalidation's sequence bump and its {@code mprotect}.
   */
  private final StampedLock lock = new StampedLock();
  /** Pages made inaccessible (zapped, not yet mapped back), one bit each. */
  private final AtomicLongArray zapped;
  /**
   * Pages zapped by {@code PROT_NONE}: all zapped ones without guard markers, else those an
   * invalidation zapped (see {@link #unmap}); one bit each.
   */
  private final AtomicLongArray protNone;
  /** Whether a feature flag is set (zapAll) rather than cleared (mapAll); written under the exclusive lock. */
  private volatile boolean armed;
  /** Invalidations so far; written under the exclusive lock, read without it. */
  private volatile long sequence;
  /** A slot's private stage 2 ({@link #privateStageTwo}): always armed, never mapped whole. */
  private volatile boolean privateStageTwo;
  /** Whether pages are zapped with guard markers rather than {@code mprotect} (see the class comment). */
  private final boolean guards;

  /** {@code MADV_GUARD_INSTALL} / {@code MADV_GUARD_REMOVE} (uapi asm-generic/mman-common.h). */
  static final int MADV_GUARD_INSTALL = 102;
  static final int MADV_GUARD_REMOVE = 103;

  private StageTwoView(Sys sys, Mapping mapping, long pages, GuestMemInodeImpl inode, long firstPage, boolean guards) {
    this.sys = sys;
    this.guards = guards;
    this.mapping = mapping;
    this.pages = pages;
    this.inode = inode;
    this.firstPage = firstPage;
    this.zapped = new AtomicLongArray((int) ((pages + 63) >>> 6));
    this.protNone = new AtomicLongArray((int) ((pages + 63) >>> 6));
  }

  /** A view of file bytes {@code [offset, offset+size)} of {@code inode}, zapped at once when {@code zap}. */
  public static StageTwoView create(GuestMemInodeImpl inode, long offset, long size, boolean zap) {
    Sys sys = inode.sys();
    long address = sys.mmap(0, size, Prot.READ_WRITE, MapFlags.SHARED, inode.memory().get(), offset);
    Mapping m = new Mapping(sys, address, size);
    try {
      sys.madvise(address, size, Sys.MADV_DONTDUMP);
      StageTwoView v = new StageTwoView(sys, m, size >>> Folio.PAGE_SHIFT, inode, offset >>> Folio.PAGE_SHIFT, takesGuards(sys, address));
      if (zap) {
        v.zapAll();
      }
      inode.addGuestMappings(v);
      return v;
    } catch (RuntimeException e) {
      m.close();
      throw e;
    }
  }

  /**
   * Whether the kernel places guard markers on this view: one on its first page, removed again
   * (a kernel without them, or a mapping they are not allowed on, says EINVAL).
   */
  private static boolean takesGuards(Sys sys, long address) {
    try {
      sys.madvise(address, Folio.PAGE_SIZE, MADV_GUARD_INSTALL);
    } catch (GmemException e) {
      return false;
    }
    sys.madvise(address, Folio.PAGE_SIZE, MADV_GUARD_REMOVE);
    return true;
  }

  /** Whether pages are zapped with guard markers (diagnostics, tests). */
  public boolean usesGuardMarkers() {
    return guards;
  }

  /** Guard markers on pages {@code [from, to)} installed, or removed. */
  private void guard(long from, long to, boolean install) {
    sys.madvise(mapping.address() + (from << Folio.PAGE_SHIFT), (to - from) << Folio.PAGE_SHIFT,
        install ? MADV_GUARD_INSTALL : MADV_GUARD_REMOVE);
  }

  /** Pages {@code [from, to)} {@code PROT_NONE}, or read-write again; the mmap lock exclusively. */
  private void protNone(long from, long to, boolean none) {
    sys.mprotect(mapping.address() + (from << Folio.PAGE_SHIFT), (to - from) << Folio.PAGE_SHIFT, none ? Prot.NONE : Prot.READ_WRITE);
    setBits(protNone, from, to, none);
  }

  /**
   * A slot's private stage 2 over file bytes {@code [offset, offset+size)}: all zapped, zapped again
   * with every invalidation of the inode's pages in it.
   */
  public static StageTwoView privateStageTwo(GuestMemInodeImpl inode, long offset, long size) {
    StageTwoView v = create(inode, offset, size, true);
    v.privateStageTwo = true;
    return v;
  }

  /** Whether this is a slot's private stage 2 ({@link #privateStageTwo}), which a feature flag never maps whole. */
  public boolean isPrivateStageTwo() {
    return privateStageTwo;
  }

  /** The address the kernel is given as {@code userspace_addr}. */
  public long address() {
    return mapping.address();
  }

  /** Every page inaccessible to the kernel: its next guest access is a fault gmem sees. */
  public void zapAll() {
    long stamp = lock.writeLock();
    try {
      if (guards) {
        guard(0, pages, true); // first: no page is accessible in between
        if (anySet(protNone, 0, pages)) {
          protNone(0, pages, false);
        }
      } else {
        protNone(0, pages, true);
      }
      setBits(zapped, 0, pages, true);
      armed = true;
      sequence++;
    } finally {
      lock.unlockWrite(stamp);
    }
  }

  /** Every page accessible again (the feature flag was cleared). */
  public void mapAll() {
    long stamp = lock.writeLock();
    try {
      if (!guards || anySet(protNone, 0, pages)) {
        protNone(0, pages, false);
      }
      if (guards) {
        guard(0, pages, false);
      }
      setBits(zapped, 0, pages, false);
      armed = false;
    } finally {
      lock.unlockWrite(stamp);
    }
  }

  /**
   * Zaps the view's pages among file pages {@code [start, end)} while a feature flag is set (with
   * it clear the view follows the file like any shared mapping). Guard markers over a range of a
   * mapping this owns (fails only without memory for page tables), or {@code mprotect}, which
   * fails only where the split would exceed {@code vm.max_map_count}.
   */
  @Override
  public void unmap(long start, long end) {
    long from = Math.max(start, firstPage) - firstPage;
    long to = Math.min(end, firstPage + pages) - firstPage;
    if (from >= to) {
      return;
    }
    long stamp = lock.writeLock();
    try {
      if (!armed) {
        return;
      }
      sequence++; // a map-back racing with this is dropped even where nothing is mapped yet
      if (allSet(protNone, from, to)) {
        return; // nothing mapped in the range: no system call
      }
      // PROT_NONE even where guard markers zap already: the punch that follows drops the markers
      // of a folio mapped anywhere else (truncate's unmap_mapping_folio zaps with DROP_MARKER).
      protNone(from, to, true);
      setBits(zapped, from, to, true);
    } finally {
      lock.unlockWrite(stamp);
    }
  }

  /** The invalidation count, read before a fault is decided and given to {@link #map(long, long)}. */
  public long sequence() {
    return sequence;
  }

  /** Maps slot page {@code index} back (gmem's fault path let an access to it through). */
  public void map(long index) {
    map(index, sequence);
  }

  /**
   * Maps slot page {@code index} back unless an invalidation came after {@code seen} (from
   * {@link #sequence()} before the fault was decided): then the decision is stale, the page stays
   * zapped and the next access faults again ({@code mmu_invalidate_retry}).
   */
  public void map(long index, long seen) {
    if (index < 0 || index >= pages || !isZapped(index)) {
      return;
    }
    long stamp = lock.readLock();
    try {
      // Two map-backs of one page may both get here: the second changes nothing. A page an
      // invalidation zapped is PROT_NONE (rare: the mmap lock exclusively); every other one is
      // zapped by its guard marker alone (the mmap lock shared).
      if (seen == sequence && isZapped(index)) {
        if (isSet(protNone, index)) {
          protNone(index, index + 1, false);
        }
        if (guards) {
          guard(index, index + 1, false);
        }
        setBits(zapped, index, index + 1, false);
      }
    } finally {
      lock.unlockRead(stamp);
    }
  }

  /** Whether slot page {@code index} is zapped now (tests, diagnostics). */
  public boolean isZapped(long index) {
    return isSet(zapped, index);
  }

  /** Slot pages zapped now. */
  public long zappedPages() {
    long n = 0;
    for (int i = 0; i < zapped.length(); i++) {
      n += Long.bitCount(zapped.get(i));
    }
    return n;
  }

  private static boolean isSet(AtomicLongArray bits, long index) {
    return (bits.get((int) (index >>> 6)) & (1L << index)) != 0;
  }

  private static boolean allSet(AtomicLongArray bits, long from, long to) {
    for (long p = from; p < to; p++) {
      if (!isSet(bits, p)) {
        return false;
      }
    }
    return true;
  }

  private static boolean anySet(AtomicLongArray bits, long from, long to) {
    for (long p = from; p < to; p++) {
      if (isSet(bits, p)) {
        return true;
      }
    }
    return false;
  }

  /** Sets or clears bits {@code [from, to)}. */
  private static void setBits(AtomicLongArray bits, long from, long to, boolean set) {
    for (long p = from; p < to; ) {
      int word = (int) (p >>> 6);
      long end = Math.min(to, ((long) word + 1) << 6);
      long mask = (end - p == 64 ? -1L : ((1L << (end - p)) - 1)) << p;
      bits.getAndAccumulate(word, mask, set ? (a, b) -> a | b : (a, b) -> a & ~b);
      p = end;
    }
  }

  @Override
  public void close() {
    inode.removeGuestMappings(this);
    mapping.close();
  }
}
