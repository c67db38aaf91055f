package dev.gmem.core.inode;

import dev.gmem.api.Errno;
import dev.gmem.api.Fallocate;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.GuestMemInode;
import dev.gmem.api.Shareability;
import dev.gmem.api.ShareabilityRange;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.FaultInterceptor;
import dev.gmem.api.spi.FilemapListener;
import dev.gmem.api.spi.FolioAllocator;
import dev.gmem.core.filemap.Filemap;
import dev.gmem.core.shareability.ShareabilityStore;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Mapping;
import dev.gmem.core.sys.Sys;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * The memory and its state (upstream {@code struct gmem_inode}): the backing fd, shareability,
 * filemap, the files viewing it and the invalidate lock. Faults take the lock shared; punch and
 * conversion take it exclusive. Lives while any file or host mapping references it.
 */
public final class GuestMemInodeImpl implements GuestMemInode {
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
  private final List<FilemapListener> listeners;
  private final List<FaultInterceptor> interceptors;
  private final Object prepareLock = new Object();
  private final Object[] allocationStripes = newStripes(64);
  private final ShareabilityStore shareability;
  private final Filemap filemap;
  private final ReentrantReadWriteLock invalidateLock = new ReentrantReadWriteLock();
  private final CopyOnWriteArrayList<GuestMemFile> files = new CopyOnWriteArrayList<>();
  private final CopyOnWriteArrayList<InodeMapping> mappings = new CopyOnWriteArrayList<>();
  private final AtomicInteger references = new AtomicInteger(1);
  private final LruBatch lruBatch = new LruBatch();
  private final java.util.Set<PinImpl> pins = java.util.concurrent.ConcurrentHashMap.newKeySet();
  private volatile Mapping guestView;
  private volatile dev.gmem.core.convert.FaultInjector conversionFaults = dev.gmem.core.convert.FaultInjector.NONE;

  public GuestMemInodeImpl(
      long ino,
      long size,
      long flags,
      Sys sys,
      Fd memory,
      FolioAllocator.Inode allocator,
      ArchHooks arch,
      List<FilemapListener> listeners,
      List<FaultInterceptor> interceptors) {
    this.ino = ino;
    this.size = size;
    this.flags = flags;
    this.nrPages = size >>> Folio.PAGE_SHIFT;
    this.sys = sys;
    this.memory = memory;
    this.allocator = allocator;
    this.folioOrder = allocator.folioOrder();
    this.hostBlockOrder = blockOrder(sys, memory);
    this.arch = arch;
    this.listeners = List.copyOf(listeners);
    this.interceptors = List.copyOf(interceptors);
    this.shareability = new ShareabilityStore(nrPages, (flags & GmemFlags.INIT_SHARED) != 0 ? Shareability.SHARED : Shareability.PRIVATE);
    this.filemap = new Filemap(nrPages);
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

  private static Object[] newStripes(int n) {
    Object[] o = new Object[n];
    for (int i = 0; i < n; i++) {
      o[i] = new Object();
    }
    return o;
  }

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

  public long nrPages() {
    return nrPages;
  }

  public Fd memory() {
    return memory;
  }

  public Sys sys() {
    return sys;
  }

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

  public ShareabilityStore shareabilityStore() {
    return shareability;
  }

  public Filemap filemap() {
    return filemap;
  }

  public ReentrantReadWriteLock invalidateLock() {
    return invalidateLock;
  }

  public FolioAllocator.Inode allocator() {
    return allocator;
  }

  /** Order of the folios this inode's allocator hands out. */
  public int folioOrder() {
    return folioOrder;
  }

  /**
   * Order of the blocks in which host mappings of the memory can be changed: 0 for shmem and
   * guest_memfd, the huge page order for hugetlbfs, whose VMAs split only at huge-page boundaries.
   */
  public int hostBlockOrder() {
    return hostBlockOrder;
  }

  public LruBatch lruBatch() {
    return lruBatch;
  }

  @Override
  public Shareability shareability(long index) {
    checkIndex(index);
    return shareability.get(index);
  }

  @Override
  public List<ShareabilityRange> shareabilityRanges(long start, long end) {
    if (start < 0 || end > nrPages || start >= end) {
      throw GmemException.einval("page range [" + start + ", " + end + ") outside [0, " + nrPages + ")");
    }
    return shareability.ranges(start, end);
  }

  @Override
  public List<Folio> folios(long start, long end) {
    return filemap.folios(Math.max(0, start), Math.min(end, nrPages));
  }

  @Override
  public long allocatedPages() {
    return filemap.presentPages();
  }

  @Override
  public List<GuestMemFile> files() {
    return List.copyOf(files);
  }

  private void checkIndex(long index) {
    if (index < 0 || index >= nrPages) {
      throw GmemException.einval("page index " + index + " outside [0, " + nrPages + ")");
    }
  }

  // ---- references ------------------------------------------------------------------------

  /** A file or mapping starts referencing the inode. */
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

  public List<InodeMapping> mappings() {
    return mappings;
  }

  private void evict() {
    invalidateLock.writeLock().lock();
    try {
      Mapping gv = guestView;
      guestView = null;
      if (gv != null) {
        gv.close();
      }
      for (Folio f : filemap.remove(0, nrPages)) {
        freeFolio(f);
      }
      memory.close();
      allocator.close();
    } finally {
      invalidateLock.writeLock().unlock();
    }
  }

  // ---- fault path ------------------------------------------------------------------------

  /**
   * The whole-file mapping that stands in for the guest's stage-2 view: memslots pass it as
   * {@code userspace_addr} and the software vCPU reads through it. Never handed to VMM code.
   */
  public long guestViewAddress() {
    Mapping gv = guestView;
    if (gv == null) {
      synchronized (this) {
        gv = guestView;
        if (gv == null) {
          long addr = sys.mmap(0, size, 3, 1, memory.get(), 0);
          gv = new Mapping(sys, addr, size);
          guestView = gv;
        }
      }
    }
    return gv.address();
  }

  /**
   * Host user fault on page {@code index} (lock held shared): SIGBUS semantics become EACCES for
   * a page the host may not fault and EFAULT beyond EOF.
   */
  public void hostFault(long index, boolean write) {
    if (index < 0 || index >= nrPages) {
      throw new GmemException(Errno.EFAULT, "host access beyond EOF of inode " + ino + " (page " + index + ")");
    }
    Shareability s = shareability.get(index);
    if (!arch.hostMayFault(index, s)) {
      throw new GmemException(Errno.EACCES, "host access to " + s + " page " + index + " of inode " + ino);
    }
    for (FaultInterceptor fi : interceptors) {
      fi.hostFault(ino, index, write);
    }
    ensureFolio(index);
  }

  /** Whether the host may fault page {@code index} now (lock held). */
  public boolean hostMayFault(long index) {
    return index >= 0 && index < nrPages && arch.hostMayFault(index, shareability.get(index));
  }

  /**
   * Guest fault on page {@code index} (lock held shared), as {@code kvm_gmem_get_pfn} plus the
   * MMU's private/shared check. Returns -1 when the access may proceed, else the
   * {@code KVM_MEMORY_EXIT_FLAG_*} of the memory-fault exit it raises.
   */
  public long guestFault(long index, long gfn, long gpa, boolean write, boolean privateAccess) {
    long privateFlag = privateAccess ? VcpuExit.MemoryFault.FLAG_PRIVATE : 0;
    if (index < 0 || index >= nrPages) {
      return privateFlag;
    }
    Shareability s = shareability.get(index);
    if (s == Shareability.NONE || (s == Shareability.PRIVATE) != privateAccess) {
      return privateFlag;
    }
    for (FaultInterceptor fi : interceptors) {
      long f = fi.guestFault(ino, index, gpa, write, privateAccess);
      if (f != 0) {
        return f | privateFlag;
      }
    }
    ensureFolio(index);
    if (privateAccess) {
      prepareOnce(index, gfn);
    }
    return -1;
  }

  /** {@code kvm_arch_gmem_prepare} once per folio, for private use only. */
  private void prepareOnce(long index, long gfn) {
    long start = filemap.folioStart(index);
    if (filemap.isPrepared(start)) {
      return;
    }
    synchronized (prepareLock) {
      if (!filemap.isPrepared(start)) {
        arch.prepare(gfn - (index - start), start, filemap.orderAt(start));
        filemap.markPrepared(start);
      }
    }
  }

  /** Looks up or allocates the folio holding {@code index} (lock held shared or exclusive). */
  public void ensureFolio(long index) {
    if (filemap.isPresent(index)) {
      return;
    }
    if (folioOrder == 0) {
      allocator.allocFolio(index);
      if (filemap.add(index, 0)) {
        added(index, 0);
      } else {
        allocator.freeFolio(index, 0);
      }
      return;
    }
    long start = index & ~((1L << folioOrder) - 1);
    // Faults on different pages of one huge page race for the same allocation: serialise per block.
    synchronized (allocationStripes[(int) ((start >>> folioOrder) & (allocationStripes.length - 1))]) {
      if (filemap.isPresent(index)) {
        return;
      }
      allocator.allocFolio(start);
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
        allocator.freeFolio(start, folioOrder);
        throw e;
      }
      // One filemap update per run of like folios (a block handed out as 512 4 KiB folios is one).
      FolioShape.folioRuns(allocator, pages, start, folioOrder, filemap::addAll);
      for (FolioAllocator.Restructure r : splits) {
        r.commit();
      }
      FolioShape.folioRuns(allocator, pages, start, folioOrder, this::addedAll);
    }
  }

  /**
   * The largest page order the guest may map page {@code index} at ({@code kvm_gmem_mapping_order}):
   * the folio's order capped by the arch; 0 where the page is in a 4 KiB folio or absent.
   * Lock-free; like the kernel's answer it may be stale by the time it is used.
   */
  public int mappingOrder(long index, long gfn, boolean isPrivate) {
    int order = filemap.orderAt(index);
    return order <= 0 ? 0 : Math.max(0, Math.min(order, arch.maxMappingOrder(gfn, isPrivate)));
  }

  /** As seen by a memslot binding the file at GPA 0 (gfn = index). */
  @Override
  public int mappingOrder(long index) {
    checkIndex(index);
    return mappingOrder(index, index, shareability.get(index) == Shareability.PRIVATE);
  }

  private void added(long index, int order) {
    lruBatch.add(index);
    for (FilemapListener l : listeners) {
      l.folioAdded(ino, flags, index, order);
    }
  }

  /** {@link #added} for a run of {@code count} folios of {@code order}, with one LRU-batch update. */
  private void addedAll(long index, int order, long count) {
    lruBatch.addAll(index, order, count);
    for (FilemapListener l : listeners) {
      for (long i = 0; i < count; i++) {
        l.folioAdded(ino, flags, index + (i << order), order);
      }
    }
  }

  private void freeFolio(Folio f) {
    arch.invalidate(f.index(), f.nrPages());
    for (FilemapListener l : listeners) {
      l.folioRemoved(ino, flags, f.index(), f.order());
    }
    allocator.freeFolio(f.index(), f.order());
  }

  // ---- fallocate ---------------------------------------------------------------------------

  /** fallocate after the file layer's checks; {@code offset}/{@code length} are aligned and valid. */
  public void fallocate(int mode, long offset, long length) {
    if ((mode & Fallocate.PUNCH_HOLE) != 0) {
      punch(offset, length);
    } else {
      allocate(offset, length);
    }
  }

  private void allocate(long offset, long length) {
    invalidateLock.readLock().lock();
    try {
      long first = offset >>> Folio.PAGE_SHIFT;
      long end = (offset + length) >>> Folio.PAGE_SHIFT;
      sys.fallocate(memory.get(), Fallocate.KEEP_SIZE, offset, length);
      for (long i = first; i < end; i++) {
        ensureFolio(i);
      }
    } finally {
      invalidateLock.readLock().unlock();
    }
  }

  /**
   * Punch with upstream's huge-page rules (driven by the allocator's folio order): pages of a
   * partly punched huge page are only zeroed — no folio leaves, no reference check; a wholly
   * punched huge page is merged back if it was split and freed, which fails with EAGAIN at the
   * first pinned page. Everything that can fail happens before the file is touched, so a failed
   * punch changes nothing. With 4 KiB folios, pinned pages are freed (the pin keeps the old page).
   */
  private void punch(long offset, long length) {
    long end = Math.min(size, offset + length < 0 ? Long.MAX_VALUE : offset + length);
    if (offset >= end) {
      return; // entirely beyond EOF: the kernel succeeds without doing anything
    }
    invalidateLock.writeLock().lock();
    try {
      long first = offset >>> Folio.PAGE_SHIFT;
      long last = end >>> Folio.PAGE_SHIFT;
      long block = 1L << folioOrder;
      long wholeStart = Math.min(last, (first + block - 1) & -block);
      long wholeEnd = Math.max(wholeStart, last & -block);
      List<BlockMerge> merges = folioOrder > 0 && wholeStart < wholeEnd ? prepareFree(wholeStart, wholeEnd) : List.of();
      try {
        // The kernel zaps every mapping of the real file, host and guest view alike; hugetlbfs
        // zeroes the partial huge pages and frees the whole ones, shmem frees every page.
        sys.fallocate(memory.get(), Fallocate.KEEP_SIZE | Fallocate.PUNCH_HOLE, offset, end - offset);
      } catch (RuntimeException e) {
        merges.forEach(m -> m.prepared().abort());
        throw e;
      }
      for (BlockMerge m : merges) {
        filemap.merge(m.index(), folioOrder);
        m.prepared().commit();
      }
      if (wholeStart == wholeEnd) {
        return;
      }
      for (Folio f : filemap.remove(wholeStart, wholeEnd)) {
        if (f.refcount() > 0) {
          for (PinImpl p : pins) {
            p.forget(f.index(), f.index() + f.nrPages());
          }
        }
        lruBatch.forget(f.index(), f.index() + f.nrPages());
        freeFolio(f);
      }
    } finally {
      invalidateLock.writeLock().unlock();
    }
  }

  /** A split huge page prepared for merging before it is freed. */
  private record BlockMerge(long index, FolioAllocator.Restructure prepared) {}

  /**
   * The fallible part of freeing whole huge pages {@code [start, end)}: no page may be pinned, and
   * split ones are prepared for merging (upstream merges before truncating).
   */
  private List<BlockMerge> prepareFree(long start, long end) {
    long pinned = filemap.firstReferenced(start, end);
    if (pinned >= 0) {
      throw GmemException.atOffset(Errno.EAGAIN, pinned << Folio.PAGE_SHIFT,
          "page " + pinned + " of a huge page being punched is pinned; release it and retry");
    }
    List<BlockMerge> merges = new ArrayList<>();
    long b = start;
    try {
      for (; b < end; b += 1L << folioOrder) {
        if (isSplitBlock(b)) {
          merges.add(new BlockMerge(b, allocator.prepareMerge(b, folioOrder)));
        }
      }
    } catch (GmemException e) {
      merges.forEach(m -> m.prepared().abort());
      throw e.errorOffset().isPresent() ? e : GmemException.atOffset(e.errno(), b << Folio.PAGE_SHIFT, e.getMessage());
    }
    return merges;
  }

  /** Whether the huge block at {@code b} is held in smaller folios that cover every page of it. */
  private boolean isSplitBlock(long b) {
    int order = filemap.orderAt(b);
    return order >= 0 && order < folioOrder && filemap.allPresent(b, b + (1L << folioOrder));
  }

  // ---- conversion ------------------------------------------------------------------------

  /** In-place conversion; see {@link dev.gmem.core.convert.ConversionEngine}. */
  public void convert(long offset, long size, Shareability target) {
    new dev.gmem.core.convert.ConversionEngine(this, conversionFaults).convert(offset, size, target);
  }

  /** Test hook: failures injected at the fallible steps of later conversions. */
  public void conversionFaultInjector(dev.gmem.core.convert.FaultInjector injector) {
    this.conversionFaults = injector;
  }

  // ---- pins ------------------------------------------------------------------------------

  /** Faults {@code [start, start+nrPages)} in as the host and takes a long-term reference on each page. */
  public dev.gmem.api.Pin pin(long start, long nrPages) {
    if (nrPages > Integer.MAX_VALUE) {
      throw GmemException.einval("cannot pin more than 2^31 pages at once");
    }
    invalidateLock.readLock().lock();
    try {
      for (long i = start; i < start + nrPages; i++) {
        if (!hostMayFault(i)) {
          throw new GmemException(Errno.EFAULT, "cannot pin page " + i + ": the host may not fault it (" + shareability.get(i) + ")");
        }
      }
      long taken = start;
      try {
        for (; taken < start + nrPages; taken++) {
          ensureFolio(taken);
          filemap.get(taken);
        }
      } catch (RuntimeException e) {
        for (long i = start; i < taken; i++) {
          filemap.put(i);
        }
        throw e;
      }
      PinImpl p = new PinImpl(this, start, nrPages);
      pins.add(p);
      return p;
    } finally {
      invalidateLock.readLock().unlock();
    }
  }

  void removePin(PinImpl p) {
    pins.remove(p);
  }
}
