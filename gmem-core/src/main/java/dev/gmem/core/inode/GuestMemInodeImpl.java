package dev.gmem.core.inode;

import dev.gmem.api.Errno;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.GuestMemInode;
import dev.gmem.api.Shareability;
import dev.gmem.api.ShareabilityRange;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.FaultInterceptor;
import dev.gmem.api.spi.FilemapListener;
import dev.gmem.api.spi.FolioAllocator;
import dev.gmem.core.access.FastPageTable;
import dev.gmem.core.access.Rcu;
import dev.gmem.core.backend.KernelAttributes;
import dev.gmem.core.convert.ConversionEngine;
import dev.gmem.core.convert.ConvertibleInode;
import dev.gmem.core.convert.FaultInjector;
import dev.gmem.core.convert.HostExposure;
import dev.gmem.core.convert.InodeMapping;
import dev.gmem.core.filemap.Filemap;
import dev.gmem.core.filemap.LruBatch;
import dev.gmem.core.shareability.ShareabilityStore;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Sys;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * The memory and its state (upstream {@code struct gmem_inode}): identity, the backing fd,
 * shareability, filemap, the files and host mappings viewing it, the invalidate lock and the
 * references that keep it alive. The work is done by its parts: {@link FaultPath} (host and guest
 * faults, folio hand-out), {@link HolePunch} (fallocate, punch, final truncation),
 * {@link PinTable} (long-term references), {@link GuestView} (gmem's windows on the memory) and
 * {@link ConversionEngine} (shareability conversion, through {@link ConvertibleInode}). Faults
 * take the lock shared; punch and conversion take it exclusive. Page indices and counts are in
 * pages, offsets and sizes in bytes.
 */
public final class GuestMemInodeImpl implements GuestMemInode, ConvertibleInode {
  private final long ino;
  private final long size;
  private final long flags;
  private final long nrPages;
  private final Sys sys;
  private final Fd memory;
  private final FolioAllocator.Inode allocator;
  private final int folioOrder;
  private final int hostBlockOrder;
  /** The hooks of the VM that holds the memory's encryption context; a context move replaces them. */
  private volatile ArchHooks arch;
  private final ShareabilityStore shareability;
  private final Filemap filemap;
  private final ReentrantReadWriteLock invalidateLock = new ReentrantReadWriteLock();
  private final CopyOnWriteArrayList<GuestMemFile> files = new CopyOnWriteArrayList<>();
  private final CopyOnWriteArrayList<InodeMapping> mappings = new CopyOnWriteArrayList<>();
  private final CopyOnWriteArrayList<GuestMappings> guestMappings = new CopyOnWriteArrayList<>();
  private final AtomicInteger references = new AtomicInteger(1);
  private final LruBatch lruBatch = new LruBatch();
  private final FaultPath faults;
  private final HolePunch holePunch;
  private final PinTable pins;
  private final GuestView guestView;
  private final HostExposure exposure = new HostExposure();
  private final LeakedPages leaked = new LeakedPages();
  private final boolean guestMemfd;
  private final List<FilemapListener> listeners;
  private final FastPageTable fastPages;
  /** See {@link #interceptedBinding}; guarded by the invalidate lock. */
  private int interceptedBindings;
  private volatile FaultInjector conversionFaults = FaultInjector.NONE;
  private volatile boolean evicted;
  private volatile KernelAttributes kernelAttributes = KernelAttributes.NONE;
  /** Whether the memory is {@code memfd_secret(2)}: the kernel removed it from its direct map. */
  private final boolean secretMemory;
  private volatile TemporaryMappings temporaryMappings = new TemporaryMappings();

  /**
   * @param guestMemfd whether {@code memory} is what the backend made (a guest_memfd on the kvm
   *     backend) rather than memory an allocator or a feature supplied, which the kernel sees as
   *     plain user memory
   */
  public GuestMemInodeImpl(
      long ino,
      long size,
      long flags,
      Sys sys,
      Fd memory,
      FolioAllocator.Inode allocator,
      ArchHooks arch,
      List<FilemapListener> listeners,
      List<FaultInterceptor> interceptors,
      boolean guestMemfd) {
    this.ino = ino;
    this.guestMemfd = guestMemfd;
    this.size = size;
    this.flags = flags;
    this.nrPages = size >>> Folio.PAGE_SHIFT;
    this.sys = sys;
    this.memory = memory;
    this.allocator = allocator;
    this.folioOrder = allocator.folioOrder();
    this.hostBlockOrder = blockOrder(sys, memory);
    this.secretMemory = !guestMemfd && sys.fstatfsType(memory.get()) == Sys.SECRETMEM_MAGIC;
    this.arch = arch;
    this.shareability = new ShareabilityStore(nrPages, (flags & GmemFlags.INIT_SHARED) != 0 ? Shareability.SHARED : Shareability.PRIVATE);
    this.filemap = new Filemap(nrPages);
    this.listeners = List.copyOf(listeners);
    this.faults = new FaultPath(this, this.listeners, List.copyOf(interceptors));
    this.holePunch = new HolePunch(this, this.listeners);
    this.pins = new PinTable(this);
    this.guestView = new GuestView(sys, memory, nrPages, hostBlockOrder);
    this.fastPages = new FastPageTable(nrPages);
  }

  /**
   * The kernel's page size for the memory ({@code st_blksize}: the huge page size on hugetlbfs,
   * 4 KiB on shmem and guest_memfd), as an order: mappings of it can be replaced or protected
   * only in whole blocks of that size.
   */
  private static int blockOrder(Sys sys, Fd memory) {
    long blksize = sys.fstat(memory.get()).blksize();
    return blksize > Folio.PAGE_SIZE && Long.bitCount(blksize) == 1 ? Long.numberOfTrailingZeros(blksize) - Folio.PAGE_SHIFT : 0;
  }

  // ---- identity and state ----------------------------------------------------------------

  @Override
  public long ino() {
    return ino;
  }

  @Override
  public long size() {
    return size;
  }

  @Override
  public long flags() {
    return flags;
  }

  @Override
  public List<FilemapListener> listeners() {
    return listeners;
  }

  @Override
  public long nrPages() {
    return nrPages;
  }

  @Override
  public Fd memory() {
    return memory;
  }

  /**
   * Whether the memory is {@code memfd_secret(2)} memory (found by its file system's magic): GUP
   * cannot reach it, it cannot be punched ({@code fallocate} is EOPNOTSUPP), only faulted in
   * through a mapping, and it is freed when its last fd and mapping go.
   */
  @Override
  public boolean secretMemory() {
    return secretMemory;
  }

  /** The runtime's temporary mappings (set when the inode joins its runtime's live inodes). */
  public TemporaryMappings temporaryMappings() {
    return temporaryMappings;
  }

  void useTemporaryMappings(TemporaryMappings mappings) {
    this.temporaryMappings = mappings;
  }

  /** Whether the memory is the backend's own file (so a memslot may bind it as a guest_memfd). */
  public boolean isGuestMemfd() {
    return guestMemfd;
  }

  @Override
  public Sys sys() {
    return sys;
  }

  @Override
  public ArchHooks arch() {
    return arch;
  }

  /**
   * A context move committed (invalidate lock held exclusive): from now on every arch call for
   * this memory goes to {@code hooks}, which took the source VM's state over.
   */
  public void adoptArch(ArchHooks hooks) {
    this.arch = hooks;
  }

  @Override
  public ShareabilityStore shareabilityStore() {
    return shareability;
  }

  @Override
  public Filemap filemap() {
    return filemap;
  }

  @Override
  public ReentrantReadWriteLock invalidateLock() {
    return invalidateLock;
  }

  @Override
  public FolioAllocator.Inode allocator() {
    return allocator;
  }

  @Override
  public int folioOrder() {
    return folioOrder;
  }

  /**
   * Order of the blocks in which host mappings of the memory can be changed: 0 for shmem and
   * guest_memfd, the huge page order for hugetlbfs, whose VMAs split only at huge-page boundaries.
   */
  @Override
  public int hostBlockOrder() {
    return hostBlockOrder;
  }

  @Override
  public HostExposure exposure() {
    return exposure;
  }

  @Override
  public LruBatch lruBatch() {
    return lruBatch;
  }

  // ---- parts -----------------------------------------------------------------------------

  /** Host and guest faults, folio hand-out, mapping order. */
  public FaultPath faults() {
    return faults;
  }

  /** fallocate: allocation and punch-hole. */
  public HolePunch holePunch() {
    return holePunch;
  }

  /** Long-term references on pages. */
  public PinTable pins() {
    return pins;
  }

  /** gmem's windows on the memory: memslots, the software vCPU, content effects (see {@link GuestView}). */
  public GuestView guestView() {
    return guestView;
  }

  @Override
  public GuestView.Window viewWindow(long first, long end) {
    return guestView.acquire(first, end);
  }

  /**
   * Which pages gmem's accessors may reach without the invalidate lock: installed by the fault
   * paths, zapped by {@link #invalidateBegin}, killed at eviction.
   */
  public FastPageTable fastPages() {
    return fastPages;
  }

  /**
   * {@code kvm_mmu_invalidate_begin} for gmem's lock-free accessors: removes the
   * {@link FastPageTable} entries of pages {@code [start, end)} and waits ({@link Rcu#synchronize})
   * until no access that may have used one is in flight. Every holder of the exclusive
   * invalidate lock calls it before it changes what an entry vouches for — presence (punch),
   * shareability and contents (conversion), gmem's windows (eviction kills the
   * whole table) — so an access on the lock-free path never meets a page in transition. Cannot fail.
   * Where no page of the range had an entry there is nothing to wait for, and no membarrier (a
   * syscall that costs as much as the punch's own fallocate on a PVM guest).
   */
  @Override
  public void invalidateBegin(long start, long end) {
    if (fastPages.zap(start, end)) {
      Rcu.GLOBAL.synchronize();
    }
    invalidateGuestMappings(start, end);
  }

  /** The rest of {@code kvm_gmem_invalidate_begin}: the bound slots' guest mappings, then the listeners. */
  private void invalidateGuestMappings(long start, long end) {
    for (GuestMappings g : guestMappings) {
      g.unmap(start, end);
    }
    for (FilemapListener l : listeners) {
      l.invalidated(ino, flags, start, end);
    }
  }

  /** A memslot's guest mappings of this inode's pages, unmapped at every invalidation until removed. */
  public void addGuestMappings(GuestMappings g) {
    guestMappings.add(g);
  }

  public void removeGuestMappings(GuestMappings g) {
    guestMappings.remove(g);
  }

  /**
   * A memslot whose flags include one of {@link FaultPath#interceptedMemslotFlags} binds this
   * inode ({@code +1}: bound with it, or the flag set late) or no longer does ({@code -1}). While
   * any does, no fault installs a lock-free entry; the first also zaps the entries there are and
   * waits for accesses in flight, so that from its return every access meets the interceptors.
   */
  public void interceptedBinding(int delta) {
    invalidateLock.writeLock().lock();
    try {
      interceptedBindings += delta;
      if (delta > 0) {
        invalidateBegin(0, nrPages);
      }
    } finally {
      invalidateLock.writeLock().unlock();
    }
  }

  /** Whether a memslot binds this inode with a flag the interceptors see accesses under. Invalidate lock held. */
  boolean hasInterceptedBindings() {
    return interceptedBindings > 0;
  }

  // ---- the public inode view -------------------------------------------------------------

  @Override
  public Shareability shareability(long index) {
    checkIndex(index);
    return shareability.get(index);
  }

  @Override
  public List<ShareabilityRange> shareabilityRanges(long startIndex, long endIndex) {
    if (startIndex < 0 || endIndex > nrPages || startIndex >= endIndex) {
      throw GmemException.einval("page range [" + startIndex + ", " + endIndex + ") outside [0, " + nrPages + ")");
    }
    return shareability.ranges(startIndex, endIndex);
  }

  @Override
  public List<Folio> folios(long startIndex, long endIndex) {
    return filemap.folios(Math.max(0, startIndex), Math.min(endIndex, nrPages));
  }

  @Override
  public long allocatedPages() {
    return filemap.presentPages();
  }

  @Override
  public long folioCount() {
    return filemap.folioCount();
  }

  @Override
  public int orderAt(long index) {
    checkIndex(index);
    return filemap.orderAt(index);
  }

  @Override
  public long trackingBytes() {
    return filemap.estimatedBytes() + allocator.trackingBytes();
  }

  @Override
  public List<GuestMemFile> files() {
    return List.copyOf(files);
  }

  @Override
  public long shareabilitySequence() {
    return shareability.sequence();
  }

  @Override
  public long leakedPages() {
    return leaked.count();
  }

  /** As seen by a memslot binding the file at GPA 0 (gfn = index). */
  @Override
  public int mappingOrder(long index) {
    checkIndex(index);
    return faults.mappingOrder(index, index, shareability.get(index) == Shareability.PRIVATE);
  }

  private void checkIndex(long index) {
    if (index < 0 || index >= nrPages) {
      throw GmemException.einval("page index " + index + " outside [0, " + nrPages + ")");
    }
  }

  // ---- conversion ------------------------------------------------------------------------

  /** In-place conversion of bytes {@code [offset, offset + length)}; see {@link ConversionEngine}. */
  public void convert(long offset, long length, Shareability target) {
    new ConversionEngine(this, conversionFaults).convert(offset, length, target);
  }

  /**
   * Conversions go to the kernel too ({@link dev.gmem.core.backend.InPlaceConversion}): set once
   * by the VM that created the inode, before anyone can convert.
   */
  public void passConversionsTo(KernelAttributes attributes) {
    this.kernelAttributes = attributes;
  }

  @Override
  public boolean kernelConverts() {
    return kernelAttributes != KernelAttributes.NONE;
  }

  @Override
  public void convertInKernel(long start, long end, Shareability target) {
    kernelAttributes.set(memory, start << Folio.PAGE_SHIFT, (end - start) << Folio.PAGE_SHIFT, target == Shareability.PRIVATE);
  }

  /** Test hook: failures injected at the fallible steps of later conversions. */
  public void conversionFaultInjector(FaultInjector injector) {
    this.conversionFaults = injector;
  }

  // ---- leaked pages and parked pages -----------------------------------------------------

  LeakedPages leaked() {
    return leaked;
  }

  /**
   * The arch reports pages {@code [start, start + nrPages)} unreclaimable: their indices are
   * retired at once (faults refuse them); their folios leave the filemap without going back to
   * the allocator when gmem next frees them or, within a conversion, at its end
   * ({@link #retireLeaked}). Any lock state; never fails.
   */
  public void leak(long start, long nrPages) {
    long end = Math.min(nrPages(), start + Math.max(0, nrPages));
    if (start >= 0 && start < end) {
      retire(start, end);
    }
  }

  /** Retires {@code [start, end)} widened to whole allocator blocks: a huge page cannot leave in parts. */
  void retire(long start, long end) {
    long block = 1L << folioOrder;
    leaked.add(start & -block, Math.min(nrPages, (end + block - 1) & -block));
  }

  @Override
  public void retireLeaked(long start, long end) {
    if (leaked.count() == 0) {
      return;
    }
    for (long[] run : leaked.within(start, end)) {
      for (Folio f : filemap.remove(run[0], run[1])) {
        pins.forget(f.index(), f.index() + f.nrPages());
        lruBatch.forget(f.index(), f.index() + f.nrPages());
      }
      for (InodeMapping m : mappings) {
        m.retire(run[0], run[1]);
      }
    }
  }

  /**
   * Pages parked in NONE within {@code [start, end)} whose last extra reference went become
   * private, and the arch hears of each run ({@code drained}). Called when references drop.
   */
  public void drainParked(long start, long end) {
    if (shareability.countPages(Shareability.NONE) == 0) {
      return;
    }
    invalidateLock.writeLock().lock();
    try {
      for (ShareabilityRange r : shareability.ranges(Math.max(0, start), Math.min(nrPages, end))) {
        if (r.shareability() != Shareability.NONE) {
          continue;
        }
        long runStart = -1;
        for (long i = r.start(); i <= r.end(); i++) {
          boolean drained = i < r.end() && filemap.refcount(i) == 0;
          if (drained && runStart < 0) {
            runStart = i;
          } else if (!drained && runStart >= 0) {
            shareability.set(runStart, i, Shareability.PRIVATE);
            arch.drained(faults.page(runStart), i - runStart);
            runStart = -1;
          }
        }
      }
    } finally {
      invalidateLock.writeLock().unlock();
    }
  }

  // ---- references ------------------------------------------------------------------------

  /** A file, mapping, memslot or pin starts referencing the inode. */
  public void acquire() {
    if (references.getAndIncrement() <= 0) {
      references.getAndDecrement();
      throw new GmemException(Errno.EBADF, "inode " + ino + " was evicted");
    }
  }

  /** Drops a reference; the last one evicts the inode: memory and reservation go back. */
  public void release() {
    if (references.decrementAndGet() == 0) {
      evict();
    }
  }

  public void addFile(GuestMemFile file) {
    files.add(file);
  }

  public void removeFile(GuestMemFile file) {
    files.remove(file);
  }

  public void addMapping(InodeMapping m) {
    mappings.add(m);
  }

  public void removeMapping(InodeMapping m) {
    mappings.remove(m);
  }

  @Override
  public List<InodeMapping> mappings() {
    return mappings;
  }

  /** Whether the last reference is gone: memory, fd and windows went back. */
  public boolean isEvicted() {
    return evicted;
  }

  /**
   * Closes every host mapping, pin and file of the inode (runtime shutdown): each drops its
   * reference, and the last one evicts. Memslots are deleted by their VMs.
   */
  void releaseAll() {
    for (InodeMapping m : List.copyOf(mappings)) {
      m.close();
    }
    pins.closeAll();
    for (GuestMemFile f : List.copyOf(files)) {
      f.close();
    }
  }

  private void evict() {
    invalidateLock.writeLock().lock();
    try {
      evicted = true;
      fastPages.kill();
      Rcu.GLOBAL.synchronize(); // no lock-free access is still loading from a window
      guestView.close();
      holePunch.truncateAll();
      memory.close();
      allocator.close();
      for (FilemapListener l : listeners) {
        l.inodeEvicted(ino, flags);
      }
    } finally {
      invalidateLock.writeLock().unlock();
    }
  }
}
