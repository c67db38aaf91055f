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
 */
public final class StageTwoView implements AutoCloseable {
  private final Sys sys;
  private final Mapping mapping;
  private final long pages;
  /** Pages made inaccessible (zapped, not yet mapped back); guarded by this. */
  private final BitSet zapped = new BitSet();

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

  /** The address the kernel is given as {@code userspace_addr}. */
  public long address() {
    return mapping.address();
  }

  /** Every page inaccessible to the kernel: its next guest access is a fault gmem sees. */
  public synchronized void zapAll() {
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

  @Override
  public void close() {
    mapping.close();
  }
}
