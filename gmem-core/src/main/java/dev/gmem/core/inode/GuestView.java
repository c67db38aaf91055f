package dev.gmem.core.inode;

import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.MapFlags;
import dev.gmem.api.Prot;
import dev.gmem.core.convert.ConvertibleInode;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Mapping;
import dev.gmem.core.sys.Sys;
import java.util.ArrayList;
import java.util.List;

/**
 * gmem's own mappings of the memory, which stand in for the guest's stage-2 view: a memslot's
 * {@code userspace_addr}, what the software vCPU copies through, where conversion applies content
 * effects, and what host accessors copy through on huge-page memory. Like the kernel, which maps
 * windows and never a whole file, gmem maps only the ranges in use: each user
 * {@linkplain #acquire acquires} a window over its range and closes it when done; users of one
 * range share one mapping, counted. A window is MADV_DONTDUMP: guest memory has no place in a
 * core dump. Never handed to VMM code.
 *
 * <p>While a window is mapped it maps every page of its range, private ones included (the guest
 * must reach them; this kernel cannot convert in place): keeping windows to the ranges in use is
 * what keeps private pages out of mappings nobody needs.
 */
public final class GuestView {
  private final Sys sys;
  private final Fd memory;
  private final long nrPages;
  /** Pages per block in which the memory can be mapped (1 but for hugetlbfs). */
  private final long blockPages;
  private final List<Region> regions = new ArrayList<>();

  GuestView(Sys sys, Fd memory, long nrPages, int blockOrder) {
    this.sys = sys;
    this.memory = memory;
    this.nrPages = nrPages;
    this.blockPages = 1L << blockOrder;
  }

  /**
   * A window over file pages {@code [first, end)} (clamped to EOF, widened to whole blocks),
   * mapped now or shared with a window that covers it. ENOMEM where the kernel refuses the
   * mapping; nothing changes then.
   */
  public synchronized Window acquire(long first, long end) {
    long from = Math.max(0, first) & -blockPages;
    long to = Math.min(nrPages, (Math.min(end, nrPages) + blockPages - 1) & -blockPages);
    if (from >= to) {
      throw GmemException.einval("window [" + first + ", " + end + ") holds no page of the file");
    }
    for (Region r : regions) {
      if (r.first <= from && to <= r.end) {
        r.users++;
        return new Window(r);
      }
    }
    long length = (to - from) << Folio.PAGE_SHIFT;
    Mapping m = new Mapping(sys, sys.mmap(0, length, Prot.READ_WRITE, MapFlags.SHARED, memory.get(), from << Folio.PAGE_SHIFT), length);
    try {
      sys.madvise(m.address(), length, Sys.MADV_DONTDUMP);
    } catch (RuntimeException e) {
      m.close();
      throw e;
    }
    Region r = new Region(from, to, m);
    regions.add(r);
    return new Window(r);
  }

  /** Unmaps what is left at eviction (invalidate lock held exclusive). */
  synchronized void close() {
    for (Region r : regions) {
      r.mapping.close();
    }
    regions.clear();
  }

  /** Mappings gmem holds now (diagnostics and tests). */
  public synchronized int mappedRegions() {
    return regions.size();
  }

  /** One mapping of file pages {@code [first, end)} and the windows using it. */
  private static final class Region {
    final long first;
    final long end;
    final Mapping mapping;
    int users = 1;

    Region(long first, long end, Mapping mapping) {
      this.first = first;
      this.end = end;
      this.mapping = mapping;
    }
  }

  /**
   * One user's hold on a mapping of a file range; the mapping goes when its last user closes.
   * Copies through it hold the inode's invalidate lock shared and check {@link #isOpen()} under
   * it; a user whose window others may still copy through closes it under the lock held
   * exclusive.
   */
  public final class Window implements ConvertibleInode.ViewWindow {
    private final Region region;
    /** The address of file byte 0, as if the whole file were mapped: one add per access. */
    private final long base;
    private volatile boolean open = true;
    private boolean released;

    private Window(Region region) {
      this.region = region;
      this.base = region.mapping.address() - (region.first << Folio.PAGE_SHIFT);
    }

    /** The address of file byte {@code offset}, which must lie in the window. */
    public long address(long offset) {
      return base + offset;
    }

    /** Whether file pages {@code [from, to)} lie in the window. */
    public boolean covers(long from, long to) {
      return first() <= from && to <= region.end;
    }

    private long first() {
      return region.first;
    }

    /** Whether accesses may still start through this user's hold. */
    public boolean isOpen() {
      return open;
    }

    /**
     * No access starts through this hold any more; the mapping stays until {@link #close()}. For a
     * user whose accesses run without the invalidate lock: retire, wait for them, then close.
     */
    public void retire() {
      open = false;
    }

    /** This user is done; the last one unmaps. Closing twice is a no-op. */
    @Override
    public void close() {
      synchronized (GuestView.this) {
        open = false;
        if (released) {
          return;
        }
        released = true;
        if (--region.users == 0) {
          regions.remove(region);
          region.mapping.close();
        }
      }
    }
  }
}
