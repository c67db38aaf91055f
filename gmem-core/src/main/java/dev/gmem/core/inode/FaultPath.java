package dev.gmem.core.inode;

import com.google.common.util.concurrent.Striped;
import dev.gmem.api.Errno;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.MemoryExitException;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.FaultInterceptor;
import dev.gmem.api.spi.FilemapListener;
import dev.gmem.api.spi.FolioAllocator;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.api.spi.GuestFault;
import dev.gmem.core.access.FastPageTable;
import dev.gmem.core.filemap.Filemap;
import dev.gmem.core.filemap.FolioShape;
import dev.gmem.core.shareability.ShareabilityStore;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.locks.Lock;

/**
 * The fault paths of one inode ({@code kvm_gmem_fault_user_mapping}, {@code kvm_gmem_get_pfn}):
 * the host's and the guest's shareability checks, folio lookup or allocation including the
 * hand-out of huge folios in normal form, the arch's prepare once per folio, and the order the
 * guest may map a page at. Every entry runs with the invalidate lock held (shared, or exclusive
 * for callers that also restructure).
 */
public final class FaultPath {
  /** Locks serialising the allocation of one huge block; faults on different blocks rarely share one. */
  static final int ALLOCATION_STRIPES = 64;
  /** Locks serialising the prepare of one folio, so that different folios prepare in parallel. */
  private static final int PREPARE_STRIPES = 64;

  private final GuestMemInodeImpl inode;
  private final long ino;
  private final long flags;
  private final long nrPages;
  private final FolioAllocator.Inode allocator;
  private final int folioOrder;
  private final ShareabilityStore shareability;
  private final Filemap filemap;
  private final List<FilemapListener> listeners;
  /** The interceptors that see accesses (and keep them off the lock-free path). */
  private final List<FaultInterceptor> interceptors;
  /** Every interceptor: pins go to all of them. */
  private final List<FaultInterceptor> allInterceptors;
  /**
   * The memslot flags under which {@link #interceptors} must see accesses; 0 where one of them
   * must see every access. Outside such memslots accesses keep the lock-free path.
   */
  private final int interceptedMemslotFlags;
  private final Striped<Lock> prepareStripes = Striped.lock(PREPARE_STRIPES);
  private final Striped<Lock> allocationStripes = Striped.lock(ALLOCATION_STRIPES);
  /** Whether the allocator hands out folio handles, so that two allocations of one page may race. */
  private final boolean racingAllocations;
  /** The arch last asked whether it overrides {@code guestAccess} (a context move replaces it), and its answer. */
  private volatile ArchHooks accessArch;
  private volatile boolean archSeesAccesses;
  private final WritePopulation writes;

  FaultPath(GuestMemInodeImpl inode, List<FilemapListener> listeners, List<FaultInterceptor> interceptors) {
    this.inode = inode;
    this.ino = inode.ino();
    this.flags = inode.flags();
    this.nrPages = inode.nrPages();
    this.allocator = inode.allocator();
    this.folioOrder = inode.folioOrder();
    this.shareability = inode.shareabilityStore();
    this.filemap = inode.filemap();
    this.listeners = listeners;
    this.interceptors = interceptors.stream().filter(FaultInterceptor::interceptsAccesses).toList();
    this.allInterceptors = interceptors;
    this.interceptedMemslotFlags = this.interceptors.stream().mapToInt(FaultInterceptor::accessMemslotFlags)
        .reduce((a, b) -> a == 0 || b == 0 ? 0 : a | b).orElse(0);
    // write() fills a page before it enters the filemap: a fault must not add the page meanwhile.
    this.racingAllocations = overridesAllocate(allocator) && (flags & GmemFlags.WRITE) == 0;
    this.writes = new WritePopulation(this, inode, this.interceptors);
  }

  /**
   * Whether {@code allocator} implements {@link FolioAllocator.Inode#allocate} itself: the SPI's
   * default frees a lost race's folio by index, which may be the winner's, so core keeps
   * allocations of one page from racing for allocators written before folio handles.
   */
  private static boolean overridesAllocate(FolioAllocator.Inode allocator) {
    try {
      return allocator.getClass().getMethod("allocate", long.class).getDeclaringClass() != FolioAllocator.Inode.class;
    } catch (NoSuchMethodException e) {
      return false;
    }
  }

  /** The identity of page {@code index} of this inode, as the arch and features key it. */
  public GmemPage page(long index) {
    return new GmemPage(ino, index);
  }

  /**
   * The memslot flags under which the interceptors must see every access to this inode
   * ({@link FaultInterceptor#accessMemslotFlags}); 0 where there is none, or where one must see
   * every access anyway.
   */
  public int interceptedMemslotFlags() {
    return interceptedMemslotFlags;
  }

  /** Every feature's interceptor, for pins. */
  List<FaultInterceptor> interceptors() {
    return allInterceptors;
  }

  /**
   * Whether the inode's arch overrides {@code guestAccess}: the software vCPU's hot path skips the
   * call otherwise, and pages it may raise exceptions on never take the lock-free path.
   */
  private boolean archSeesAccesses() {
    ArchHooks arch = inode.arch();
    if (arch != accessArch) {
      try {
        archSeesAccesses = arch.getClass().getMethod("guestAccess", GuestFault.class).getDeclaringClass() != ArchHooks.class;
      } catch (NoSuchMethodException e) {
        throw new IllegalStateException(e);
      }
      accessArch = arch;
    }
    return archSeesAccesses;
  }

  /**
   * Host user faults on pages {@code [start, end)}, all or nothing: every page is checked before
   * any is faulted in — SIGBUS semantics become EFAULT beyond EOF, EHWPOISON for a page the arch
   * leaked and EACCES for a page the host may not fault, for the first such page — then the
   * interceptors see every page, then the
   * folios are looked up or allocated (an allocation failure leaves the earlier pages allocated,
   * as a kernel fault that ends in VM_FAULT_OOM does). Each page is then installed in the
   * inode's {@link FastPageTable} for host accesses, unless an interceptor must see every access.
   */
  public void hostFault(long start, long end, boolean write) {
    checkHostFault(start, end);
    for (FaultInterceptor fi : interceptors) {
      for (long i = start; i < end; i++) {
        fi.hostFault(page(i), write);
      }
    }
    if (folioOrder == 0 && racingAllocations && end - start > 1) {
      ensureSmallFolios(start, end);
    } else {
      for (long i = start; i < end; i++) {
        ensureFolio(i);
      }
    }
    for (long i = start; i < end; i++) {
      install(i, FastPageTable.Kind.HOST);
    }
  }

  /** Pages one {@link Filemap#addPages} takes: a mask's worth, in one chunk. */
  private static final int SMALL_RUN = 64;

  /**
   * {@link #ensureFolio} of the order-0 pages {@code [start, end)} where allocations may race
   * (checked pages, none leaked): per run of up to 64 pages in one filemap chunk, the absent ones
   * allocated, added with one filemap update, and the listeners told once per stretch of added
   * pages — a bulk host write (a migration's run) pays one chunk copy instead of one per page.
   * The race stays {@code filemap_add_folio}'s: a page another fault added first is not in the
   * update, and this fault frees its own folio for it.
   */
  private void ensureSmallFolios(long start, long end) {
    FolioAllocator.Allocation[] folios = null;
    for (long s = start; s < end; ) {
      long e = Math.min(end, Math.min(s + SMALL_RUN, ((s >>> 9) + 1) << 9));
      long absent = 0;
      for (long i = s; i < e; i++) {
        if (!filemap.isPresent(i)) {
          absent |= 1L << (i - s);
        }
      }
      if (absent != 0) {
        if (folios == null) {
          folios = new FolioAllocator.Allocation[SMALL_RUN];
        }
        addSmallFolios(s, absent, folios);
      }
      s = e;
    }
  }

  /**
   * Allocates a folio for each page {@code s + k} of {@code absent}, adds them, commits the ones
   * that went in and frees the others (lost races); an allocation failure still adds the pages
   * allocated before it, as page-by-page faults that end in VM_FAULT_OOM leave them, then throws.
   */
  private void addSmallFolios(long s, long absent, FolioAllocator.Allocation[] folios) {
    long allocated = 0;
    try {
      for (long w = absent; w != 0; w &= w - 1) {
        int k = Long.numberOfTrailingZeros(w);
        folios[k] = allocator.allocate(s + k);
        allocated |= 1L << k;
      }
    } finally {
      long added = 0;
      try {
        added = filemap.addPages(s, allocated);
      } finally {
        for (long w = allocated; w != 0; w &= w - 1) {
          int k = Long.numberOfTrailingZeros(w);
          if ((added & (1L << k)) != 0) {
            folios[k].commit();
          } else {
            folios[k].free(); // another fault's folio went in: give back our own, never the winner's
          }
          folios[k] = null;
        }
      }
      for (long w = added; w != 0; ) {
        int k = Long.numberOfTrailingZeros(w);
        int n = Long.numberOfTrailingZeros(~(w >>> k)); // the stretch of added pages from k
        addedAll(s + k, 0, n);
        w = n == 64 ? 0 : w & ~(((1L << n) - 1) << k);
      }
    }
  }

  /** The checks of {@link #hostFault}, alone: EFAULT beyond EOF, EHWPOISON for a leaked page, EACCES where the host may not fault. */
  public void checkHostFault(long start, long end) {
    for (long i = start; i < end; i++) {
      if (i < 0 || i >= nrPages) {
        throw new GmemException(Errno.EFAULT, "host access beyond EOF of inode " + ino + " (page " + i + ")");
      }
      refuseLeaked(i);
      Shareability s = shareability.get(i);
      if (!inode.arch().hostMayFault(page(i), s)) {
        throw new GmemException(Errno.EACCES, "host access to " + s + " page " + i + " of inode " + ino);
      }
    }
  }

  /**
   * Lets later accesses of {@code kind} to page {@code index} take the lock-free path; only while
   * nothing but the invalidate-locked state decides them, i.e. no interceptor is present.
   */
  private void install(long index, FastPageTable.Kind kind) {
    if (interceptors.isEmpty() || (interceptedMemslotFlags != 0 && !inode.hasInterceptedBindings())) {
      inode.fastPages().install(index, kind);
    }
  }

  /** Whether the host may fault page {@code index} now. */
  public boolean hostMayFault(long index) {
    return index >= 0 && index < nrPages && hostMayFault(index, shareability.get(index));
  }

  /** Whether the host may fault page {@code index} when it is {@code s}: the arch decides, a leaked page never. */
  public boolean hostMayFault(long index, Shareability s) {
    return inode.arch().hostMayFault(page(index), s) && !inode.leaked().contains(index);
  }

  /**
   * Pages {@code [start, end)}, all of shareability {@code s}, cut into runs by whether the host
   * may fault them, asking the arch about every page: an arch (pKVM's hypervisor) may refuse one
   * page of a run the VMM's bookkeeping calls uniform. Each run is {@code {start, end, 1 or 0}}.
   */
  public List<long[]> hostRuns(long start, long end, Shareability s) {
    List<long[]> runs = new ArrayList<>();
    for (long i = start; i < end; i++) {
      long may = hostMayFault(i, s) ? 1 : 0;
      long[] last = runs.isEmpty() ? null : runs.get(runs.size() - 1);
      if (last != null && last[2] == may) {
        last[1] = i + 1;
      } else {
        runs.add(new long[] {i, i + 1, may});
      }
    }
    return runs;
  }

  private void refuseLeaked(long index) {
    if (inode.leaked().contains(index)) {
      throw new GmemException(Errno.EHWPOISON, "page " + index + " of inode " + ino + " was leaked by the arch and is never handed out again");
    }
  }

  /**
   * The kind of a guest access to a page of shareability {@code s} whose own private bit is
   * {@code accessBit}: that bit on arches whose accesses carry one (TDX, SNP); elsewhere the page's
   * attribute, as {@code kvm_mmu_page_fault} sets PFERR_PRIVATE_ACCESS from
   * {@code kvm_mem_is_private} — so a VM without private memory only makes shared accesses.
   * Both vCPU paths resolve an access with this one rule.
   */
  public boolean isPrivateAccess(Shareability s, boolean accessBit) {
    return inode.arch().privateBitInAccess() ? accessBit : isPrivateMemory(s);
  }

  /** {@code kvm_mem_is_private}: the VM has private memory and the page is private. */
  private boolean isPrivateMemory(Shareability s) {
    return s == Shareability.PRIVATE && inode.arch().hasPrivateMemory();
  }

  /**
   * Guest fault on page {@code index} (guest frame {@code gfn}, address {@code gpa}) by an access
   * whose own private bit is {@code accessBit}; see the six-argument form.
   */
  public long guestFault(long index, long gfn, long gpa, boolean write, boolean accessBit) {
    return guestFault(index, gfn, gpa, write, accessBit, null);
  }

  /**
   * Guest fault on page {@code index} through memslot {@code slot} (null where no memslot is
   * involved; the features' interceptors see it with its VM), as {@code kvm_gmem_get_pfn} plus the
   * MMU's private/shared check ({@link #isPrivateAccess}). Returns -1 when the access may proceed,
   * else the {@code KVM_MEMORY_EXIT_FLAG_*} of the memory-fault exit it raises: a page parked in
   * NONE, a leaked page, or, where accesses carry their own bit, a kind that disagrees with the
   * page. A private access prepares the folio once. An exception the arch raises for the access
   * ({@code ArchHooks.guestAccess}) is thrown as {@link MemoryExitException}.
   */
  public long guestFault(long index, long gfn, long gpa, boolean write, boolean accessBit, Memslot slot) {
    if (index < 0 || index >= nrPages || inode.leaked().contains(index)) {
      return inode.arch().privateBitInAccess() && accessBit ? VcpuExit.MemoryFault.FLAG_PRIVATE : 0;
    }
    Shareability s = shareability.get(index);
    boolean privateAccess = isPrivateAccess(s, accessBit);
    long privateFlag = privateAccess ? VcpuExit.MemoryFault.FLAG_PRIVATE : 0;
    if (s == Shareability.NONE || privateAccess != isPrivateMemory(s)) {
      return privateFlag;
    }
    boolean archSees = archSeesAccesses();
    GuestFault fault = interceptors.isEmpty() && !archSees ? null
        : new GuestFault(slot == null ? null : slot.file().vm(), slot, page(index), gpa, write, privateAccess);
    for (FaultInterceptor fi : interceptors) {
      long f = fi.guestFault(fault);
      if (f != 0) {
        return f | privateFlag;
      }
    }
    if (privateAccess && inode.kernelConverts()) {
      // The kernel SIGBUSes every user access to a private page, gmem's windows included.
      throw new GmemException(Errno.EOPNOTSUPP, "private page " + index + " of inode " + ino
          + " is the kernel's to protect: only a real vCPU reaches it");
    }
    ensureFolio(index);
    if (privateAccess) {
      prepareOnce(index, gfn);
    }
    VcpuExit.GuestException raised = archSees ? inode.arch().guestAccess(fault) : null;
    if (raised != null) {
      throw new MemoryExitException(raised); // TDX #VE, SNP #VC: the access does not happen
    }
    if (!archSees) {
      // Keyed by the access's own bit, which is all the lock-free path knows; any conversion or
      // punch of the page zaps the entry, and with it the verdict the bit got here.
      install(index, accessBit ? FastPageTable.Kind.GUEST_PRIVATE : FastPageTable.Kind.GUEST_SHARED);
    }
    return -1;
  }

  /**
   * {@code kvm_arch_gmem_prepare} exactly once per page, for private use only: the whole folio on
   * its first private fault, or — for a folio merged from parts of which some were prepared —
   * only the pages that were not, in naturally aligned blocks. Serialised per folio (striped),
   * so first faults of different folios prepare in parallel.
   */
  private void prepareOnce(long index, long gfn) {
    long start = filemap.folioStart(index);
    if (filemap.isPrepared(start)) {
      return;
    }
    Lock stripe = prepareStripes.getAt((int) ((start ^ (start >>> 18)) & (prepareStripes.size() - 1)));
    stripe.lock();
    try {
      if (filemap.isPrepared(start)) {
        return;
      }
      long startGfn = gfn - (index - start);
      long end = start + (1L << filemap.orderAt(start));
      List<long[]> prepared = filemap.preparedParts(start);
      List<long[]> done = new ArrayList<>(prepared);
      long p = start;
      int k = 0;
      try {
        while (p < end) {
          while (k < prepared.size() && blockEnd(prepared.get(k)) <= p) {
            k++;
          }
          if (k < prepared.size() && prepared.get(k)[0] <= p) {
            p = blockEnd(prepared.get(k));
            continue;
          }
          int o = largestAlignedOrder(p, k < prepared.size() ? prepared.get(k)[0] : end);
          inode.arch().prepare(page(p), startGfn + (p - start), o);
          done.add(new long[] {p, o});
          p += 1L << o;
        }
      } catch (RuntimeException e) {
        filemap.recordPreparedParts(start, done); // what did get prepared stays prepared
        throw e;
      }
      filemap.markPrepared(start);
    } finally {
      stripe.unlock();
    }
  }

  private static long blockEnd(long[] block) {
    return block[0] + (1L << block[1]);
  }

  /** The order of the largest naturally aligned block at {@code p} that ends by {@code end}. */
  private static int largestAlignedOrder(long p, long end) {
    int o = Math.min(Long.numberOfTrailingZeros(p), 63 - Long.numberOfLeadingZeros(end - p));
    return Math.min(o, Filemap.MAX_ORDER);
  }

  /** Looks up or allocates the folio holding page {@code index}. */
  public void ensureFolio(long index) {
    if (filemap.isPresent(index)) {
      return;
    }
    refuseLeaked(index);
    if (folioOrder == 0) {
      if (racingAllocations) {
        addSmallFolio(index);
      } else {
        Lock stripe = allocationStripes.getAt((int) (index & (allocationStripes.size() - 1)));
        stripe.lock();
        try {
          addSmallFolio(index);
        } finally {
          stripe.unlock();
        }
      }
      return;
    }
    long start = index & ~((1L << folioOrder) - 1);
    // Faults on different pages of one huge page race for the same allocation: serialise per block.
    Lock stripe = allocationStripes.getAt((int) ((start >>> folioOrder) & (allocationStripes.size() - 1)));
    stripe.lock();
    try {
      if (filemap.isPresent(index)) {
        return;
      }
      FolioAllocator.Allocation folio = allocator.allocate(start);
      // Page size follows shareability: a huge page holding shared pages is handed out split,
      // in stages where the allocator has them. The store cannot change: we hold the lock shared.
      FolioShape.PrivateRange pages = (s, e) -> shareability.isUniform(s, e, Shareability.PRIVATE);
      List<FolioAllocator.Restructure> splits = new ArrayList<>();
      try {
        FolioShape.splits(allocator, pages, start, folioOrder, (i, o, n) -> splits.add(allocator.prepareSplit(i, o, n)));
      } catch (RuntimeException e) {
        for (FolioAllocator.Restructure r : splits) {
          r.abort();
        }
        folio.free();
        throw e;
      }
      // One filemap update per run of like folios (a block handed out as 512 4 KiB folios is one).
      FolioShape.folioRuns(allocator, pages, start, folioOrder, filemap::addAll);
      folio.commit();
      for (FolioAllocator.Restructure r : splits) {
        r.commit();
      }
      FolioShape.folioRuns(allocator, pages, start, folioOrder, this::addedAll);
    } finally {
      stripe.unlock();
    }
  }

  /**
   * An order-0 folio for {@code index}, as {@code filemap_add_folio} races: of two first faults of
   * the page both allocate, one folio goes in, and the loser frees its own.
   */
  private void addSmallFolio(long index) {
    if (filemap.isPresent(index)) {
      return;
    }
    FolioAllocator.Allocation folio = allocator.allocate(index);
    if (filemap.add(index, 0)) {
      folio.commit();
      added(index, 0);
    } else {
      folio.free();
    }
  }

  /**
   * The largest page order the guest may map page {@code index} at ({@code kvm_gmem_mapping_order}):
   * the folio's order capped by the arch; 0 where the page is in a 4 KiB folio or absent.
   * Lock-free; like the kernel's answer it may be stale by the time it is used.
   */
  public int mappingOrder(long index, long gfn, boolean isPrivate) {
    int order = filemap.orderAt(index);
    return order <= 0 ? 0 : Math.max(0, Math.min(order, inode.arch().maxMappingOrder(page(index), gfn, isPrivate)));
  }

  /** {@link #mappingOrder(long, long, boolean)} through memslot {@code slot}, also capped by the features (userfault: 4 KiB). */
  public int mappingOrder(long index, long gfn, boolean isPrivate, Memslot slot) {
    int order = mappingOrder(index, gfn, isPrivate);
    if (order > 0 && !interceptors.isEmpty()) {
      GuestFault fault = new GuestFault(slot.file().vm(), slot, page(index), gfn << Folio.PAGE_SHIFT, false, isPrivate);
      for (FaultInterceptor fi : interceptors) {
        order = Math.max(0, Math.min(order, fi.maxMappingOrder(fault)));
      }
    }
    return order;
  }

  /**
   * {@code write()} population of pages {@code [first, first + n)}, {@code n} = whole pages of
   * {@code src} (the file checked flag, alignment and EOF): per page in order — EHWPOISON for a
   * leaked page, EACCES for one the host may not fault or that is not SHARED, the interceptors'
   * host-fault checks, EEXIST for a present page of a NO_DIRECT_MAP inode (it is sealed); then an
   * absent page is filled through a temporary mapping and only then added (the listeners seal
   * it), a present one is overwritten. Serialised with the page's first faults by its allocation
   * stripe. A failure at the first page throws and changes nothing; a later one ends the call.
   * Returns the bytes written and advances {@code src} by as many.
   */
  public long write(long first, java.nio.ByteBuffer src) {
    return writes.write(first, src);
  }

  /** The allocation stripe of order-0 page {@code index}: first faults and {@code write()} serialise on it. */
  Lock allocationStripe(long index) {
    return allocationStripes.getAt((int) (index & (allocationStripes.size() - 1)));
  }

  private void added(long index, int order) {
    inode.lruBatch().add(index);
    for (FilemapListener l : listeners) {
      l.folioAdded(ino, flags, index, order);
    }
  }

  /**
   * {@link #added} for a run of {@code count} folios of {@code order}: one LRU-batch update and
   * one {@link FilemapListener#foliosAdded} per listener. Nothing when {@code count} is 0.
   */
  void addedAll(long index, int order, long count) {
    if (count == 0) {
      return;
    }
    inode.lruBatch().addAll(index, order, count);
    for (FilemapListener l : listeners) {
      l.foliosAdded(ino, flags, index, count, order);
    }
  }
}
