package dev.gmem.core.memslot;

import dev.gmem.api.Folio;
import dev.gmem.api.MapFlags;
import dev.gmem.api.Prot;
import dev.gmem.core.inode.GuestMappings;
import dev.gmem.core.inode.GuestMemInodeImpl;
import dev.gmem.core.sys.Mapping;
import dev.gmem.core.sys.Sys;
import java.util.BitSet;

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
  /** Pages made inaccessible (zapped, not yet mapped back); guarded by this. */
  private final BitSet zapped = new BitSet();
  /** Whether a feature flag is set (zapAll) rather than cleared (mapAll); guarded by this. */
  private boolean armed;
  /** Invalidations so far; guarded by this. */
  private long sequence;
  /** A slot's private stage 2 ({@link #privateStageTwo}): always armed, never mapped whole. */
  private volatile boolean privateStageTwo;

  private StageTwoView(Sys sys, Mapping mapping, long pages, GuestMemInodeImpl inode, long firstPage) {
    this.sys = sys;
    this.mapping = mapping;
    this.pages = pages;
    this.inode = inode;
    this.firstPage = firstPage;
  }

  /** A view of file bytes {@code [offset, offset+size)} of {@code inode}, zapped at once when {@code zap}. */
  public static StageTwoView create(GuestMemInodeImpl inode, long offset, long size, boolean zap) {
    Sys sys = inode.sys();
    long address = sys.mmap(0, size, Prot.READ_WRITE, MapFlags.SHARED, inode.memory().get(), offset);
    Mapping m = new Mapping(sys, address, size);
    try {
      sys.madvise(address, size, Sys.MADV_DONTDUMP);
      StageTwoView v = new StageTwoView(sys, m, size >>> Folio.PAGE_SHIFT, inode, offset >>> Folio.PAGE_SHIFT);
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
  public synchronized void zapAll() {
    sys.mprotect(mapping.address(), pages << Folio.PAGE_SHIFT, Prot.NONE);
    zapped.set(0, (int) pages);
    armed = true;
    sequence++;
  }

  /** Every page accessible again (the feature flag was cleared). */
  public synchronized void mapAll() {
    sys.mprotect(mapping.address(), pages << Folio.PAGE_SHIFT, Prot.READ_WRITE);
    zapped.clear();
    armed = false;
  }

  /**
   * Zaps the view's pages among file pages {@code [start, end)} while a feature flag is set (with
   * it clear the view follows the file like any shared mapping). {@code mprotect} of a range of a
   * mapping this owns; it fails only where the split would exceed {@code vm.max_map_count}.
   */
  @Override
  public synchronized void unmap(long start, long end) {
    long from = Math.max(start, firstPage) - firstPage;
    long to = Math.min(end, firstPage + pages) - firstPage;
    if (!armed || from >= to) {
      return;
    }
    sequence++; // a map-back racing with this is dropped even where nothing is mapped yet
    if (zapped.nextClearBit((int) from) >= to) {
      return; // nothing mapped in the range: no system call
    }
    sys.mprotect(mapping.address() + (from << Folio.PAGE_SHIFT), (to - from) << Folio.PAGE_SHIFT, Prot.NONE);
    zapped.set((int) from, (int) to);
  }

  /** The invalidation count, read before a fault is decided and given to {@link #map(long, long)}. */
  public synchronized long sequence() {
    return sequence;
  }

  /** Maps slot page {@code index} back (gmem's fault path let an access to it through). */
  public synchronized void map(long index) {
    map(index, sequence);
  }

  /**
   * Maps slot page {@code index} back unless an invalidation came after {@code seen} (from
   * {@link #sequence()} before the fault was decided): then the decision is stale, the page stays
   * zapped and the next access faults again ({@code mmu_invalidate_retry}).
   */
  public synchronized void map(long index, long seen) {
    if (seen == sequence && index >= 0 && index < pages && zapped.get((int) index)) {
      sys.mprotect(mapping.address() + (index << Folio.PAGE_SHIFT), Folio.PAGE_SIZE, Prot.READ_WRITE);
      zapped.clear((int) index);
    }
  }

  /** Whether slot page {@code index} is zapped now (tests, diagnostics). */
  public synchronized boolean isZapped(long index) {
    return zapped.get((int) index);
  }

  /** Slot pages zapped now. */
  public synchronized long zappedPages() {
    return zapped.cardinality();
  }

  @Override
  public void close() {
    inode.removeGuestMappings(this);
    mapping.close();
  }
}
