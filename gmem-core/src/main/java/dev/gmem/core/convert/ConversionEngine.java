package dev.gmem.core.convert;

import com.kenai.jffi.MemoryIO;
import dev.gmem.api.Errno;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.Shareability;
import dev.gmem.api.ShareabilityRange;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.FolioAllocator;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.core.filemap.Filemap;
import dev.gmem.core.filemap.FolioShape;
import dev.gmem.core.shareability.ShareabilityStore;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.locks.Lock;

/**
 * In-place shared↔private conversion with the semantics of upstream
 * {@code KVM_SET_MEMORY_ATTRIBUTES2}: everything that can fail happens first; after the point of
 * no return nothing can. gmem goes beyond upstream, which WARNs when its rollback fails: the
 * steps after the point of no return are infallible by construction (a published store version,
 * committed allocator restructures, host-mapping changes whose VMAs and spare mappings were
 * reserved, arch hooks that may not fail, stores into present pages).
 *
 * <p>Unlike upstream, host mappings are not zapped before the reference check: gmem's own
 * references (pins) cannot appear while the invalidate lock is held exclusive, and a transient
 * cover would make raw users of a mapping fault (HotSpot: garbage values and a deferred
 * InternalError) on a conversion that then fails. A failed conversion therefore changes no
 * mapping at all; a successful to-private covers the pages and then {@link Detach detaches} those
 * raw users may have reached, so that a kernel reference taken earlier never sees what the guest
 * writes afterwards.
 */
public final class ConversionEngine {
  private static final MemoryIO IO = MemoryIO.getInstance();
  /**
   * What SCRAMBLE leaves in a page: a fixed non-zero pattern, so that a test can tell scrambled
   * from zeroed and from the old contents (real ciphertext is indistinguishable from random).
   */
  private static final byte SCRAMBLE_FILL = (byte) 0xa5;

  private final ConvertibleInode inode;
  private final FaultInjector injector;
  /** gmem's window over the conversion's range, while it applies content effects or detaches. */
  private ConvertibleInode.ViewWindow window;

  public ConversionEngine(ConvertibleInode inode, FaultInjector injector) {
    this.inode = inode;
    this.injector = injector;
  }

  /** Validates in the upstream order, then converts bytes {@code [offset, offset + length)} under the exclusive invalidate lock. */
  public void convert(long offset, long length, Shareability target) {
    if (target == null || target == Shareability.NONE) {
      throw GmemException.einval("unsupported conversion target " + target);
    }
    if (target == Shareability.PRIVATE && !inode.arch().hasPrivateMemory()) {
      throw GmemException.einval("this VM type has no private memory: PRIVATE is not a supported attribute");
    }
    if (length == 0 || offset + length < offset || offset < 0 || length < 0) {
      throw GmemException.einval("conversion size 0x" + Long.toHexString(length) + " is zero or overflows");
    }
    if (((offset | length) & (Folio.PAGE_SIZE - 1)) != 0) {
      throw GmemException.einval("conversion range [0x" + Long.toHexString(offset) + ", +0x" + Long.toHexString(length) + ") not page aligned");
    }
    if (offset >= inode.size() || offset + length > inode.size()) {
      throw GmemException.einval("conversion range beyond the file size 0x" + Long.toHexString(inode.size()));
    }
    Lock lock = inode.invalidateLock().writeLock();
    lock.lock();
    try {
      convertLocked(offset >>> Folio.PAGE_SHIFT, (offset + length) >>> Folio.PAGE_SHIFT, target);
    } finally {
      lock.unlock();
    }
  }

  private void convertLocked(long start, long end, Shareability target) {
    ShareabilityStore store = inode.shareabilityStore();
    if (store.isUniform(start, end, target)) {
      return;
    }
    // Before anything else: a lock-free access to these pages must not race the covers, the arch
    // hooks or the store; afterwards they take the locked path until faulted again.
    inode.invalidateBegin(start, end);
    List<ShareabilityRange> before = store.ranges(start, end);
    boolean toPrivate = target == Shareability.PRIVATE;
    injector.at(ConversionStep.STORE_PREPARE, start);
    ShareabilityStore.Update update = prepareStore(store, start, end, target);
    List<Restructure> restructures = new ArrayList<>();
    ArchConversion arch = new ArchConversion(inode.arch(), inode.ino());
    List<long[]> parked = List.of();
    List<MappingChange> mappings = new ArrayList<>();
    Detach detach = Detach.NONE;
    try {
      planRestructures(start, end, target, restructures);
      if (toPrivate) {
        parked = checkReferences(start, end, () -> arch.busyPolicy(start, end, before));
        keepParkedPagesSmall(parked, restructures);
      }
      prepareHostMappings(start, end, toPrivate, mappings);
      boolean changesContents = changesContents(before, target);
      if (toPrivate) {
        injector.at(ConversionStep.DETACH_PREPARE, start);
        detach = Detach.prepare(inode, start, end, !changesContents, () -> viewBase(start, end));
      }
      if (changesContents) {
        viewBase(start, end); // a window to apply them through: mapped while failing is still allowed
      }
      injector.at(ConversionStep.ARCH_VETO, start);
      if (ArchOverrides.vetoes(inode.arch())) {
        arch.veto(ArchConversion.runs(inode.ino(), before, parked, target));
      }
      // Where the kernel converts in place, it checks and converts too; last, as nothing after fails.
      inode.convertInKernel(start, end, target);
    } catch (RuntimeException e) {
      closeWindow();
      detach.close();
      mappings.forEach(MappingChange::abort);
      restructures.forEach(r -> r.prepared.abort());
      update.abort();
      throw e;
    }
    // ---- point of no return: nothing below can fail ----
    if (toPrivate) {
      mappings.forEach(MappingChange::apply);
      detach.apply(); // parked pages too: they turn private once drained, with no conversion to detach them then
      detach.close();
      inode.exposure().remove(start, end);
    }
    commit(before, start, end, target, update, restructures, arch);
    closeWindow();
    for (long[] p : parked) {
      store.set(p[0], p[1], Shareability.NONE); // pKVM NONE_SHARED: nobody faults them until the references drain
    }
    if (!toPrivate) {
      mappings.forEach(MappingChange::apply);
    }
    inode.retireLeaked(start, end);
  }

  /**
   * The address of file byte 0 in a window of gmem's over {@code [start, end)}, mapped on first
   * use (ENOMEM allowed: before the point of no return only) and held until the conversion ends.
   */
  private long viewBase(long start, long end) {
    if (window == null) {
      window = inode.viewWindow(start, end);
    }
    return window.address(0);
  }

  private void closeWindow() {
    if (window != null) {
      window.close();
      window = null;
    }
  }

  /**
   * Prepares every host mapping's change — covers for to-private, the file mapped back for
   * to-shared — so that applying them cannot fail (see {@link InodeMapping#prepareAccess}).
   */
  private void prepareHostMappings(long start, long end, boolean toPrivate, List<MappingChange> out) {
    injector.at(ConversionStep.MAPPINGS_PREPARE, start);
    for (InodeMapping m : inode.mappings()) {
      try {
        out.add(m.prepareAccess(start, end, !toPrivate));
      } catch (GmemException e) {
        throw rebase(e, start);
      }
    }
  }

  /**
   * A parked page keeps its reference, and a huge folio holds only private pages: merges that
   * would take in a parked page are dropped (their preparation undone); the block merges on a
   * later conversion once its pages drained.
   */
  private static void keepParkedPagesSmall(List<long[]> parked, List<Restructure> restructures) {
    restructures.removeIf(r -> {
      boolean touches = !r.split && parked.stream().anyMatch(p -> p[0] < r.index + (1L << r.order) && p[1] > r.index);
      if (touches) {
        r.prepared.abort();
      }
      return touches;
    });
  }

  private static ShareabilityStore.Update prepareStore(ShareabilityStore store, long start, long end, Shareability target) {
    try {
      return store.prepare(start, end, target);
    } catch (GmemException e) {
      throw rebase(e, start);
    }
  }

  private static GmemException rebase(GmemException e, long index) {
    return e.errorOffset().isPresent() ? e : GmemException.atOffset(e.errno(), index << Folio.PAGE_SHIFT, e.getMessage());
  }

  /** A prepared folio split (to {@code order}) or merge (into {@code order}), committed after the point of no return. */
  private record Restructure(long index, int order, boolean split, FolioAllocator.Restructure prepared) {}

  /**
   * Folio size follows shareability (upstream "restructuring on conversion"), keeping every block
   * in {@link FolioShape normal form}: the range is rounded to the allocator's folio size;
   * private→shared splits each huge folio it touches along the allocator's split chain, only the
   * pieces holding now-shared pages further (1 GiB → 2 MiB → 4 KiB); shared→private merges a block
   * of some chain order when all of it will be private, the largest such block first.
   */
  private void planRestructures(long start, long end, Shareability target, List<Restructure> out) {
    int order = inode.folioOrder();
    if (order == 0) {
      return;
    }
    long block = 1L << order;
    long from = start & ~(block - 1);
    long to = Math.min(inode.nrPages(), (end + block - 1) & ~(block - 1));
    if (target == Shareability.SHARED) {
      // A huge folio holds only private pages; after the call the ones in [start, end) are shared.
      FolioShape.PrivateRange privateAfter = (s, e) -> e <= start || s >= end;
      for (Folio f : inode.filemap().folios(from, to)) {
        if (f.order() > 0 && f.index() < end && f.index() + f.nrPages() > start) {
          FolioShape.splits(inode.allocator(), privateAfter, f.index(), f.order(), (b, o, n) -> {
            injector.at(ConversionStep.SPLIT_PREPARE, b);
            out.add(new Restructure(b, n, true, rebaseCall(() -> inode.allocator().prepareSplit(b, o, n), b)));
          });
        }
      }
    } else {
      for (long b = from; b < to; b += block) {
        planMerges(b, order, start, end, out);
      }
    }
  }

  /** Merges block {@code [b, b + 2^order)} if it will be all private, else looks at its pieces that the call touches. */
  private void planMerges(long b, int order, long start, long end, List<Restructure> out) {
    Filemap filemap = inode.filemap();
    long n = 1L << order;
    int current = filemap.orderAt(b);
    if (current >= order) {
      return;
    }
    ShareabilityStore store = inode.shareabilityStore();
    boolean privateAfter = privateOrEmpty(store, b, Math.max(b, start)) && privateOrEmpty(store, Math.min(b + n, Math.max(end, b)), b + n);
    if (current >= 0 && privateAfter && filemap.allPresent(b, b + n)) {
      injector.at(ConversionStep.MERGE_PREPARE, b);
      out.add(new Restructure(b, order, false, rebaseCall(() -> inode.allocator().prepareMerge(b, order), b)));
      return;
    }
    int next = FolioShape.splitOrder(inode.allocator(), order);
    for (long p = Math.max(b, start & -(1L << next)); next > 0 && p < Math.min(b + n, end); p += 1L << next) {
      planMerges(p, next, start, end, out);
    }
  }

  private static boolean privateOrEmpty(ShareabilityStore store, long s, long e) {
    return s >= e || store.isUniform(s, e, Shareability.PRIVATE);
  }

  private interface Prep {
    FolioAllocator.Restructure get();
  }

  private static FolioAllocator.Restructure rebaseCall(Prep p, long index) {
    try {
      return p.get();
    } catch (GmemException e) {
      throw rebase(e, index);
    }
  }

  /**
   * Upstream requires {@code refcount == nr_pages + 1}: no pins, no transient references. A
   * transient reference may be a fresh folio still in an LRU batch, so drain once and look again.
   * What is still referenced then fails the call with EAGAIN, or, when the arch parks busy pages
   * (pKVM), is returned as the runs to park in NONE.
   */
  private List<long[]> checkReferences(long start, long end, java.util.function.Supplier<ArchHooks.BusyPolicy> policy) {
    Filemap filemap = inode.filemap();
    long offending = firstReferenced(filemap, start, end);
    if (offending >= 0 && inode.lruBatch().first(start, end) >= 0) {
      inode.lruBatch().drain();
      offending = firstReferenced(filemap, start, end);
    }
    injector.at(ConversionStep.REFCHECK, offending >= 0 ? offending : start);
    if (offending < 0) {
      return List.of();
    }
    if (policy.get() != ArchHooks.BusyPolicy.PARK) {
      throw GmemException.atOffset(Errno.EAGAIN, offending << Folio.PAGE_SHIFT,
          "page " + offending + " still has unexpected references (pinned?); release them and retry");
    }
    List<long[]> busy = new ArrayList<>();
    long p = offending;
    while (p >= 0) {
      long[] last = busy.isEmpty() ? null : busy.get(busy.size() - 1);
      if (last != null && last[1] == p) {
        last[1] = p + 1;
      } else {
        busy.add(new long[] {p, p + 1});
      }
      p = p + 1 < end ? filemap.firstReferenced(p + 1, end) : -1;
    }
    return busy;
  }

  private long firstReferenced(Filemap filemap, long start, long end) {
    long pinned = filemap.firstReferenced(start, end);
    long batched = inode.lruBatch().first(start, end);
    if (pinned < 0) {
      return batched;
    }
    return batched < 0 ? pinned : Math.min(pinned, batched);
  }

  /** The arch's content effect, which a kernel that converts in place applies itself. */
  private ArchHooks.ContentEffect contentEffect(ArchHooks arch, Shareability from, Shareability to) {
    return inode.kernelConverts() ? ArchHooks.ContentEffect.PRESERVE : arch.contentEffect(from, to);
  }

  private boolean changesContents(List<ShareabilityRange> before, Shareability target) {
    ArchHooks.ContentEffect[] effects = new ArchHooks.ContentEffect[Shareability.values().length];
    for (ShareabilityRange r : before) {
      if (r.shareability() != target && effect(effects, inode.arch(), r.shareability(), target) != ArchHooks.ContentEffect.PRESERVE) {
        return true;
      }
    }
    return false;
  }

  /**
   * The content effect of converting {@code from} to {@code target}, asked of the arch once per
   * conversion and source shareability ({@code seen} remembers), not per run: a fragmented range
   * has hundreds of thousands of runs.
   */
  private ArchHooks.ContentEffect effect(ArchHooks.ContentEffect[] seen, ArchHooks arch, Shareability from, Shareability target) {
    ArchHooks.ContentEffect e = seen[from.ordinal()];
    if (e == null) {
      e = seen[from.ordinal()] = contentEffect(arch, from, target);
    }
    return e;
  }

  /** Upstream's order after the point of no return: invalidate, arch hooks, store, restructure. */
  private void commit(List<ShareabilityRange> before, long start, long end, Shareability target,
      ShareabilityStore.Update update, List<Restructure> restructures, ArchConversion accepted) {
    ArchHooks arch = inode.arch();
    Filemap filemap = inode.filemap();
    ArchHooks.ContentEffect[] effects = new ArchHooks.ContentEffect[Shareability.values().length];
    boolean invalidates = ArchOverrides.invalidates(arch);
    for (ShareabilityRange r : before) {
      if (r.shareability() == target) {
        continue;
      }
      ArchHooks.ContentEffect effect = effect(effects, arch, r.shareability(), target);
      boolean leavesPrivate = r.shareability() == Shareability.PRIVATE;
      if ((!leavesPrivate || !invalidates) && effect == ArchHooks.ContentEffect.PRESERVE) {
        continue; // nothing per folio to do: skip the walk over millions of 4 KiB folios
      }
      filemap.forEachPresentRun(r.start(), r.end(), (s, e) -> {
        if (leavesPrivate) {
          arch.invalidate(new GmemPage(inode.ino(), s), e - s); // kvm_arch_gmem_invalidate: leaving private use
        }
        applyContentEffect(effect, s, e);
      });
    }
    accepted.commit();
    update.commit();
    for (Restructure r : restructures) {
      if (r.split) {
        int from = filemap.orderAt(r.index);
        filemap.split(r.index, r.order);
        inode.listeners().forEach(l -> l.folioSplit(inode.ino(), inode.flags(), r.index, from, r.order));
      } else {
        filemap.merge(r.index, r.order);
        inode.listeners().forEach(l -> l.folioMerged(inode.ino(), inode.flags(), r.index, r.order));
      }
      r.prepared.commit();
    }
    // Prepare is undone for pages that left private use; the next private fault prepares again.
    if (target != Shareability.PRIVATE && ArchOverrides.prepares(arch)) {
      for (ShareabilityRange r : before) {
        if (r.shareability() == Shareability.PRIVATE) {
          filemap.clearPrepared(r.start(), r.end());
        }
      }
    }
  }

  /** Stores into present pages through the window mapped before: no allocation, no fault, cannot fail. */
  private void applyContentEffect(ArchHooks.ContentEffect effect, long start, long end) {
    if (effect == ArchHooks.ContentEffect.PRESERVE) {
      return;
    }
    long addr = window.address(start << Folio.PAGE_SHIFT);
    long len = (end - start) << Folio.PAGE_SHIFT;
    IO.setMemory(addr, len, effect == ArchHooks.ContentEffect.ZERO ? (byte) 0 : SCRAMBLE_FILL);
  }
}
