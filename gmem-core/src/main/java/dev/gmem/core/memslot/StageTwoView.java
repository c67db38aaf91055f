package dev.gmem.core.memslot;

import dev.gmem.api.Folio;
import dev.gmem.api.MapFlags;
import dev.gmem.api.Prot;
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
 * <p>Where the arch's private bit is a GPA bit (TDX's shared bit) the view is the slot's
 * <em>private</em> stage 2 ({@link #privateStageTwo}): the kernel sees the slot at GPAs without the
 * bit, which are private accesses, so a page is mapped only once gmem's fault path let a private
 * access to it through (private, accepted), and every invalidation of the inode's pages (punch,
 * conversion) zaps it again, as KVM zaps the S-EPT. Shared pages are never mapped: a private
 * access to one comes back and becomes the rule's memory fault; shared accesses carry the bit and
 * are outside every memslot the kernel knows, so they come back too. A mapping back that raced with
 * a zap is dropped ({@link #generation}), as KVM retries a fault that raced with an invalidation.
 */
public final class StageTwoView implements AutoCloseable {
  private final Sys sys;
  private final Mapping mapping;
  private final long pages;
  /** Pages made inaccessible (zapped, not yet mapped back); guarded by this. */
  private final BitSet zapped = new BitSet();
  /** Zaps so far ({@code mmu_invalidate_seq}); guarded by this. */
  private long generation;
  /** The inode page the view starts at, and its registration for invalidations (private stage 2 only). */
  private long firstPage;
  private Runnable unregister;

  private StageTwoView(Sys sys, Mapping mapping, long pages) {
    this.sys = sys;
    this.mapping = mapping;
    this.pages = pages;
  }

  /** A view of file bytes {@code [offset, offset+size)} of {@code inode}, zapped at once when {@code zap}. */
  public static StageTwoView create(GuestMemInodeImpl inode, long offset, long size, boolean zap) {
    Sys sys = inode.sys();
    long address = sys.mmap(0, size, Prot.READ_WRITE, MapFlags.SHARED, inode.memory().get(), offset);
    Mapping m = new Mapping(sys, address, size);
    try {
      sys.madvise(address, size, Sys.MADV_DONTDUMP);
      StageTwoView v = new StageTwoView(sys, m, size >>> Folio.PAGE_SHIFT);
      if (zap) {
        v.zapAll();
      }
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
    v.firstPage = offset >>> Folio.PAGE_SHIFT;
    v.unregister = inode.addStageTwo(v::zapInodePages);
    return v;
  }

  private synchronized void zapInodePages(long start, long end) {
    long from = Math.max(start, firstPage) - firstPage;
    long to = Math.min(end, firstPage + pages) - firstPage;
    if (from >= to) {
      return;
    }
    generation++;
    int next = zapped.nextClearBit((int) from);
    if (next >= to) {
      return; // nothing mapped in the range
    }
    sys.mprotect(mapping.address() + (from << Folio.PAGE_SHIFT), (to - from) << Folio.PAGE_SHIFT, Prot.NONE);
    zapped.set((int) from, (int) to);
  }

  /** Zaps so far: read before a guest fault, passed to {@link #map(long, long)} after it. */
  public synchronized long generation() {
    return generation;
  }

  /** {@link #map(long)} unless a zap came since {@code seenGeneration} (the fault raced with it). */
  public synchronized void map(long index, long seenGeneration) {
    if (generation == seenGeneration) {
      map(index);
    }
  }

  /** The address the kernel is given as {@code userspace_addr}. */
  public long address() {
    return mapping.address();
  }

  /** Every page inaccessible to the kernel: its next guest access is a fault gmem sees. */
  public synchronized void zapAll() {
    generation++;
    sys.mprotect(mapping.address(), pages << Folio.PAGE_SHIFT, Prot.NONE);
    zapped.set(0, (int) pages);
  }

  /** Every page accessible again (the feature flag was cleared). */
  public synchronized void mapAll() {
    sys.mprotect(mapping.address(), pages << Folio.PAGE_SHIFT, Prot.READ_WRITE);
    zapped.clear();
  }

  /** Maps slot page {@code index} back (gmem's fault path let an access to it through). */
  public synchronized void map(long index) {
    if (index >= 0 && index < pages && zapped.get((int) index)) {
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

  /** Whether this is a slot's private stage 2 ({@link #privateStageTwo}), which a feature flag never maps whole. */
  public boolean isPrivateStageTwo() {
    return unregister != null;
  }

  @Override
  public void close() {
    if (unregister != null) {
      unregister.run();
    }
    mapping.close();
  }
}
