package dev.gmem.arch.snp;

import dev.gmem.api.spi.GmemPage;
import java.util.HashMap;
import java.util.Map;

/**
 * The Reverse Map Table of one VM's pages, keyed by host page ({@link GmemPage}, as the kernel keys
 * it by pfn), with the three instructions that change it: RMPUPDATE (to guest-owned at 4 KiB or
 * 2 MiB, back to hypervisor-owned), PSMASH (a 2 MiB entry into 512 4 KiB entries with the same
 * state) and the validated bit PVALIDATE flips. Absent means hypervisor-owned. One monitor guards
 * it: the hooks that change it run under gmem's per-inode locks, which do not order the inodes of
 * one VM among themselves.
 */
final class Rmp {
  private static final int PAGES_2M = 1 << RmpEntry.ORDER_2M;

  private final Map<GmemPage, RmpEntry> entries = new HashMap<>();
  /** The guest frame each assigned page is at: PVALIDATE and accesses find their entry by GPA. */
  private final Map<Long, GmemPage> byGfn = new HashMap<>();
  private long psmashes;
  private long rmpUpdates;

  synchronized RmpEntry get(GmemPage page) {
    return entries.getOrDefault(page, RmpEntry.HYPERVISOR);
  }

  synchronized GmemPage pageAt(long gfn) {
    return byGfn.get(gfn);
  }

  /** Whether all 512 pages of the 2 MiB block at {@code base} are hypervisor-owned. */
  synchronized boolean allShared2M(GmemPage base) {
    for (int i = 0; i < PAGES_2M; i++) {
      if (entries.containsKey(base.plus(i))) {
        return false;
      }
    }
    return true;
  }

  /** RMPUPDATE to guest-owned: the naturally aligned block of {@code 1 << order} pages at {@code first}, as one entry. */
  synchronized void assign(GmemPage first, long gfn, int order, int asid, boolean immutable, boolean validated) {
    for (int i = 0; i < 1 << order; i++) {
      entries.put(first.plus(i), new RmpEntry(true, validated, order, immutable, asid, (gfn + i) << 12));
      byGfn.put(gfn + i, first.plus(i));
    }
    rmpUpdates++;
  }

  /** RMPUPDATE to hypervisor-owned of one entry: a 4 KiB page, or a whole 2 MiB entry from its first page. */
  synchronized void reclaim(GmemPage first) {
    RmpEntry e = entries.get(first);
    if (e == null) {
      return;
    }
    int n = e.is2M() ? PAGES_2M : 1;
    for (int i = 0; i < n; i++) {
      RmpEntry gone = entries.remove(first.plus(i));
      if (gone != null) {
        byGfn.remove(gone.gpa() >>> 12, first.plus(i));
      }
    }
    rmpUpdates++;
  }

  /** PSMASH: the 2 MiB entry holding {@code page} becomes 512 4 KiB entries with the same state; counted. */
  synchronized void psmash(GmemPage page) {
    GmemPage base = base2M(page);
    for (int i = 0; i < PAGES_2M; i++) {
      entries.computeIfPresent(base.plus(i), (p, e) -> e.withOrder(0));
    }
    psmashes++;
  }

  /** The validated bit of the entry at {@code first} ({@code 1 << order} pages). */
  synchronized void validate(GmemPage first, int order, boolean validated) {
    for (int i = 0; i < 1 << order; i++) {
      entries.computeIfPresent(first.plus(i), (p, e) -> e.withValidated(validated));
    }
  }

  /** SNP_LAUNCH_FINISH: launch pages become ordinary guest-valid pages. */
  synchronized void finishLaunch() {
    entries.replaceAll((p, e) -> e.mutable());
  }

  /** The move of an encryption context: every entry and count of {@code source} becomes this table's; {@code source} is left empty. */
  void takeFrom(Rmp source) {
    synchronized (source) {
      synchronized (this) {
        entries.putAll(source.entries);
        byGfn.putAll(source.byGfn);
        psmashes += source.psmashes;
        rmpUpdates += source.rmpUpdates;
        source.entries.clear();
        source.byGfn.clear();
      }
    }
  }

  synchronized long psmashes() {
    return psmashes;
  }

  synchronized long rmpUpdates() {
    return rmpUpdates;
  }

  synchronized int assignedPages() {
    return entries.size();
  }

  static GmemPage base2M(GmemPage page) {
    return new GmemPage(page.ino(), page.index() & ~(long) (PAGES_2M - 1));
  }
}
