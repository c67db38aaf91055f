package dev.gmem.arch.tdx.module;

import dev.gmem.api.spi.GmemPage;
import dev.gmem.arch.tdx.SeptEntry;
import dev.gmem.arch.tdx.SeptState;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A TD's Secure-EPT leaves by GPA, and the PAMT's owner records of the host pages behind them: the
 * two views the TDX module keeps of one mapping (the S-EPT walked by GPA, the PAMT indexed by
 * host pfn, which gmem's page identity stands in for). A 2 MiB leaf owns its 512 pages. Not
 * thread-safe: the TD's module model serialises.
 */
final class SecureEpt {
  private static final long PAGE = 4096;
  private static final long HUGE = 2L << 20;

  /** By GPA; a hash map because every lookup is exact (GPA order is made only for {@link #all}). */
  private final Map<Long, SeptEntry> leaves = new HashMap<>();
  private final Map<GmemPage, Long> pamt = new HashMap<>();

  /** The leaf covering {@code gpa}: a 4 KiB leaf at it, or a 2 MiB leaf at its 2 MiB boundary. */
  SeptEntry lookup(long gpa) {
    SeptEntry e = leaves.get(gpa & -PAGE);
    if (e != null) {
      return e;
    }
    e = leaves.get(gpa & -HUGE);
    return e != null && e.level() == 1 ? e : null;
  }

  /** The leaf whose host memory includes {@code page}. */
  SeptEntry owner(GmemPage page) {
    Long gpa = pamt.get(page);
    return gpa == null ? null : leaves.get(gpa);
  }

  void put(SeptEntry e) {
    leaves.put(e.gpa(), e);
    long pages = e.level() == 1 ? 512 : 1;
    for (long i = 0; i < pages; i++) {
      pamt.put(e.page().plus(i), e.gpa());
    }
  }

  /** Replaces {@code e}'s state in place. */
  SeptEntry set(SeptEntry e, SeptState s) {
    SeptEntry n = e.with(s);
    leaves.put(n.gpa(), n);
    return n;
  }

  /** Removes the leaf from the S-EPT; its pages stay owned in the PAMT until {@link #release}. */
  void unmap(SeptEntry e) {
    leaves.remove(e.gpa());
  }

  /** The PAMT gives the host page back. */
  void release(GmemPage page) {
    pamt.remove(page);
  }

  /** {@code TDH.MEM.PAGE.DEMOTE}: a 2 MiB leaf becomes 512 4 KiB leaves in the same state. */
  void demote(SeptEntry huge) {
    leaves.remove(huge.gpa());
    for (long i = 0; i < 512; i++) {
      put(new SeptEntry(huge.gpa() + i * PAGE, huge.page().plus(i), 0, huge.state(), huge.added()));
    }
  }

  /** Every leaf, by GPA. */
  List<SeptEntry> all() {
    List<SeptEntry> all = new ArrayList<>(leaves.values());
    all.sort(Comparator.comparingLong(SeptEntry::gpa));
    return all;
  }

  boolean isEmpty() {
    return leaves.isEmpty() && pamt.isEmpty();
  }

  /** Moves everything from {@code source} here (a context move), leaving {@code source} empty. */
  void takeFrom(SecureEpt source) {
    leaves.putAll(source.leaves);
    pamt.putAll(source.pamt);
    source.leaves.clear();
    source.pamt.clear();
  }
}
