package dev.gmem.arch.tdx.module;

import dev.gmem.api.spi.GmemPage;
import dev.gmem.arch.tdx.SeptEntry;
import dev.gmem.arch.tdx.SeptState;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A TD's Secure-EPT leaves by GPA, and the PAMT's owner records of the host pages behind them: the
 * two views the TDX module keeps of one mapping (the S-EPT walked by GPA, the PAMT indexed by
 * host pfn, which gmem's page identity stands in for). A 2 MiB leaf owns its 512 pages. Not
 * thread-safe: the TD's module model serialises. Both are {@link PageTable}s: a populate stores a
 * run of pages, which hits one table leaf per 2 MiB.
 */
final class SecureEpt {
  private static final long PAGE = 4096;
  private static final long HUGE = 2L << 20;
  private static final int SHIFT = 12;

  /** By GFN: every lookup is exact (GPA order is made only for {@link #all}). */
  private final PageTable<SeptEntry> leaves = new PageTable<>();
  /**
   * By inode, then page index: the leaf that owns the page as it was stored (only its GPA is
   * used: the current leaf is looked up there, so a state change needs no PAMT update).
   */
  private final Map<Long, PageTable<SeptEntry>> pamt = new HashMap<>();
  private long lastIno = -1;
  private PageTable<SeptEntry> lastPamt;

  /** The leaf covering {@code gpa}: a 4 KiB leaf at it, or a 2 MiB leaf at its 2 MiB boundary. */
  SeptEntry lookup(long gpa) {
    SeptEntry e = leaves.get(gpa >>> SHIFT);
    if (e != null) {
      return e;
    }
    e = leaves.get((gpa & -HUGE) >>> SHIFT);
    return e != null && e.level() == 1 ? e : null;
  }

  /** The leaf whose host memory includes {@code page}. */
  SeptEntry owner(GmemPage page) {
    PageTable<SeptEntry> t = pamt(page.ino(), false);
    SeptEntry stored = t == null ? null : t.get(page.index());
    return stored == null ? null : leaves.get(stored.gpa() >>> SHIFT);
  }

  void put(SeptEntry e) {
    leaves.put(e.gpa() >>> SHIFT, e);
    long pages = e.level() == 1 ? 512 : 1;
    PageTable<SeptEntry> t = pamt(e.page().ino(), true);
    for (long i = 0; i < pages; i++) {
      t.put(e.page().index() + i, e);
    }
  }

  /** Replaces {@code e}'s state in place. */
  SeptEntry set(SeptEntry e, SeptState s) {
    SeptEntry n = e.with(s);
    leaves.put(n.gpa() >>> SHIFT, n);
    return n;
  }

  /** Removes the leaf from the S-EPT; its pages stay owned in the PAMT until {@link #release}. */
  void unmap(SeptEntry e) {
    leaves.remove(e.gpa() >>> SHIFT);
  }

  /** The PAMT gives the host page back. */
  void release(GmemPage page) {
    PageTable<SeptEntry> t = pamt(page.ino(), false);
    if (t != null) {
      t.remove(page.index());
      if (t.isEmpty()) {
        pamt.remove(page.ino());
        lastIno = -1;
        lastPamt = null;
      }
    }
  }

  /** {@code TDH.MEM.PAGE.DEMOTE}: a 2 MiB leaf becomes 512 4 KiB leaves in the same state. */
  void demote(SeptEntry huge) {
    leaves.remove(huge.gpa() >>> SHIFT);
    for (long i = 0; i < 512; i++) {
      put(new SeptEntry(huge.gpa() + i * PAGE, huge.page().plus(i), 0, huge.state(), huge.added()));
    }
  }

  /** Every leaf, by GPA. */
  List<SeptEntry> all() {
    List<SeptEntry> all = new ArrayList<>((int) leaves.size());
    leaves.forEach((gfn, e) -> all.add(e));
    return all;
  }

  boolean isEmpty() {
    return leaves.isEmpty() && pamt.isEmpty();
  }

  /** Moves everything from {@code source} here (a context move), leaving {@code source} empty. */
  void takeFrom(SecureEpt source) {
    leaves.takeFrom(source.leaves);
    for (Map.Entry<Long, PageTable<SeptEntry>> e : source.pamt.entrySet()) {
      pamt(e.getKey(), true).takeFrom(e.getValue());
    }
    source.pamt.clear();
    source.lastIno = -1;
    source.lastPamt = null;
  }

  private PageTable<SeptEntry> pamt(long ino, boolean create) {
    if (ino == lastIno) {
      return lastPamt;
    }
    PageTable<SeptEntry> t = create ? pamt.computeIfAbsent(ino, k -> new PageTable<>()) : pamt.get(ino);
    if (t != null) {
      lastIno = ino;
      lastPamt = t;
    }
    return t;
  }
}
