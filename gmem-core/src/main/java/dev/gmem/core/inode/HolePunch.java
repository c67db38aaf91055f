package dev.gmem.core.inode;

import dev.gmem.api.Errno;
import dev.gmem.api.Fallocate;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.spi.FilemapListener;
import dev.gmem.api.spi.FolioAllocator;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.core.filemap.Filemap;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code kvm_gmem_fallocate} after the file layer's checks: allocation, punch-hole with
 * upstream's huge-page rules, and the final truncation at eviction. The one place folios leave
 * the filemap and go back to the allocator.
 */
public final class HolePunch {
  private final GuestMemInodeImpl inode;
  private final Filemap filemap;
  private final FolioAllocator.Inode allocator;
  private final int folioOrder;
  private final List<FilemapListener> listeners;

  HolePunch(GuestMemInodeImpl inode, List<FilemapListener> listeners) {
    this.inode = inode;
    this.filemap = inode.filemap();
    this.allocator = inode.allocator();
    this.folioOrder = inode.folioOrder();
    this.listeners = listeners;
  }

  /** fallocate; {@code offset}/{@code length} are bytes, page aligned and valid. */
  public void fallocate(int mode, long offset, long length) {
    if ((mode & Fallocate.PUNCH_HOLE) != 0) {
      punch(offset, length);
    } else {
      allocate(offset, length);
    }
  }

  private void allocate(long offset, long length) {
    inode.invalidateLock().readLock().lock();
    try {
      long first = offset >>> Folio.PAGE_SHIFT;
      long end = (offset + length) >>> Folio.PAGE_SHIFT;
      if (inode.secretMemory()) {
        faultInSecret(first, end);
      } else {
        inode.sys().fallocate(inode.memory().get(), Fallocate.KEEP_SIZE, offset, length);
      }
      for (long i = first; i < end; i++) {
        inode.faults().ensureFolio(i);
      }
    } finally {
      inode.invalidateLock().readLock().unlock();
    }
  }

  /**
   * Punch with upstream's huge-page rules (driven by the allocator's folio order): pages of a
   * partly punched huge page are only zeroed — no folio leaves, no reference check; a wholly
   * punched huge page is merged back if it was split and freed, which fails with EAGAIN at the
   * first pinned page. Everything that can fail happens first, so a failed punch changes nothing.
   * With 4 KiB folios, pinned pages are freed (the pin keeps the old page).
   *
   * <p>Then upstream's order ({@code kvm_gmem_punch_hole}: truncate → {@code ->free_folio} →
   * {@code kvm_arch_gmem_invalidate}, and only then the page goes back): the folios leave the
   * filemap, the arch invalidates each while the page still holds its contents — and may leak it,
   * which keeps it — the listeners hear of the others, and only then is the memory freed
   * ({@code fallocate}, which cannot fail on a valid range of these files, around leaked pages)
   * and the folios given back to the allocator.
   */
  private void punch(long offset, long length) {
    long end = Math.min(inode.size(), offset + length < 0 ? Long.MAX_VALUE : offset + length);
    if (offset >= end) {
      return; // entirely beyond EOF: the kernel succeeds without doing anything
    }
    inode.invalidateLock().writeLock().lock();
    try {
      long first = offset >>> Folio.PAGE_SHIFT;
      long last = end >>> Folio.PAGE_SHIFT;
      inode.invalidateBegin(first, last);
      long block = 1L << folioOrder;
      long wholeStart = Math.min(last, (first + block - 1) & -block);
      long wholeEnd = Math.max(wholeStart, last & -block);
      List<BlockMerge> merges = folioOrder > 0 && wholeStart < wholeEnd ? prepareFree(wholeStart, wholeEnd) : List.of();
      // ---- nothing below fails ----
      for (BlockMerge m : merges) {
        filemap.merge(m.index(), folioOrder);
        m.prepared().commit();
        for (FilemapListener l : listeners) {
          l.folioMerged(inode.ino(), inode.flags(), m.index(), folioOrder);
        }
      }
      List<Folio> removed = wholeStart < wholeEnd ? filemap.remove(wholeStart, wholeEnd) : List.of();
      List<Folio> freed = new ArrayList<>(removed.size());
      for (Folio f : removed) {
        if (f.refcount() > 0) {
          inode.pins().forget(f.index(), f.index() + f.nrPages());
        }
        inode.lruBatch().forget(f.index(), f.index() + f.nrPages());
        if (invalidate(f)) {
          freed.add(f);
        }
      }
      // The kernel zaps every mapping of the real file, host and guest windows alike; hugetlbfs
      // zeroes the partial huge pages and frees the whole ones, shmem frees every page.
      if (inode.secretMemory()) {
        zeroSecret(freed, first, last);
      } else {
        punchFile(offset, end);
      }
      for (Folio f : freed) {
        allocator.freeFolio(f.index(), f.order());
      }
    } finally {
      inode.invalidateLock().writeLock().unlock();
    }
  }

  /**
   * Punches the memory file over {@code [offset, end)} except where pages are leaked: their
   * memory stays held while the inode lives.
   */
  private void punchFile(long offset, long end) {
    punchFile(offset, end, (a, b) -> inode.sys().fallocate(inode.memory().get(), Fallocate.KEEP_SIZE | Fallocate.PUNCH_HOLE, a, b - a));
  }

  /**
   * The secret-memory form of {@link #punchFile}: the freed folios, and the pages of the range a
   * raw view exposed (a raw access may have instantiated them without a folio), except leaked
   * ones. Absent pages are not touched: a write would allocate them.
   */
  private void zeroSecret(List<Folio> freed, long first, long last) {
    long runStart = -1;
    long runEnd = -1;
    for (Folio f : freed) { // in index order: one temporary mapping per contiguous run
      if (f.index() != runEnd) {
        if (runStart >= 0) {
          zeroSecret(runStart << Folio.PAGE_SHIFT, runEnd << Folio.PAGE_SHIFT);
        }
        runStart = f.index();
      }
      runEnd = f.index() + f.nrPages();
    }
    if (runStart >= 0) {
      zeroSecret(runStart << Folio.PAGE_SHIFT, runEnd << Folio.PAGE_SHIFT);
    }
    for (long[] r : inode.exposure().within(first, last)) {
      punchFile(Math.max(r[0], first) << Folio.PAGE_SHIFT, Math.min(r[1], last) << Folio.PAGE_SHIFT, this::zeroSecret);
    }
  }

  private void punchFile(long offset, long end, java.util.function.BiConsumer<Long, Long> free) {
    long at = offset;
    for (long[] run : inode.leaked().within(offset >>> Folio.PAGE_SHIFT, end >>> Folio.PAGE_SHIFT)) {
      long runStart = run[0] << Folio.PAGE_SHIFT;
      if (runStart > at) {
        free.accept(at, runStart);
      }
      at = Math.max(at, run[1] << Folio.PAGE_SHIFT);
    }
    if (at < end) {
      free.accept(at, end);
    }
  }

  /**
   * Secret memory cannot be fallocated (EOPNOTSUPP): its pages are allocated by faults, so the
   * absent ones are faulted in by a read through a temporary mapping, which changes no byte.
   */
  private void faultInSecret(long first, long end) {
    for (long i = first; i < end; i++) {
      if (!filemap.isPresent(i)) {
        try (var m = inode.temporaryMappings().open(inode, i, 1)) {
          m.read(0, java.nio.ByteBuffer.allocate(1));
        }
      }
    }
  }

  /**
   * Secret memory cannot be punched ({@code fallocate} is EOPNOTSUPP, {@code MADV_REMOVE} EINVAL):
   * its pages stay allocated until the inode's last fd and mapping go. So a punched range is
   * zeroed instead, through a temporary mapping, after the folios left the filemap — it reads
   * zero again, as a punched page does — and stays charged to the inode (the direct-map feature's
   * accounting shows it as held).
   */
  private void zeroSecret(long offset, long end) {
    long first = offset >>> Folio.PAGE_SHIFT;
    long last = end >>> Folio.PAGE_SHIFT;
    try (var m = inode.temporaryMappings().open(inode, first, last - first)) {
      m.fill(0, (last - first) << Folio.PAGE_SHIFT, (byte) 0);
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

  /** {@code truncate_inode_pages_final}: every folio goes back (invalidate lock held exclusive). */
  void truncateAll() {
    for (Folio f : filemap.remove(0, inode.nrPages())) {
      free(f);
    }
  }

  /** {@code ->free_folio} and then the allocator takes the folio back, unless it was leaked. */
  private void free(Folio f) {
    if (invalidate(f)) {
      allocator.freeFolio(f.index(), f.order());
    }
  }

  /**
   * {@code ->free_folio} while the page still holds its contents: the arch invalidates, then
   * listeners hear the folio left — unless the arch leaked a page of it during (or before) the
   * invalidate: then the whole folio is retired and stays where it is, in the firmware's hands.
   * Returns whether the folio may be freed.
   */
  private boolean invalidate(Folio f) {
    inode.arch().invalidate(new GmemPage(inode.ino(), f.index()), f.nrPages());
    if (inode.leaked().intersects(f.index(), f.index() + f.nrPages())) {
      inode.retire(f.index(), f.index() + f.nrPages());
      return false;
    }
    for (FilemapListener l : listeners) {
      l.folioRemoved(inode.ino(), inode.flags(), f.index(), f.order());
    }
    return true;
  }
}
