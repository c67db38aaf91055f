package dev.gmem.core.convert;

import dev.gmem.api.Shareability;
import dev.gmem.api.ShareabilityRange;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.Conversion;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.api.spi.Prepared;
import java.util.ArrayList;
import java.util.List;

/**
 * The arch's part of one conversion before its point of no return: which runs change to what
 * (busy pages parked in NONE under {@link ArchHooks.BusyPolicy#PARK}), and the veto on each run.
 * Kept apart from the engine's ordering so that the hook calls sit in one named place.
 */
final class ArchConversion {
  private final ArchHooks arch;
  private final long ino;
  private final List<Prepared> accepted = new ArrayList<>();

  ArchConversion(ArchHooks arch, long ino) {
    this.arch = arch;
    this.ino = ino;
  }

  /** The runs of {@code before} that change, each with the shareability it gets: NONE where parked. */
  static List<Conversion> runs(long ino, List<ShareabilityRange> before, List<long[]> parked, Shareability target) {
    List<Conversion> runs = new ArrayList<>();
    for (ShareabilityRange r : before) {
      long at = r.start();
      for (long[] p : parked) {
        long ps = Math.max(p[0], r.start());
        long pe = Math.min(p[1], r.end());
        if (ps >= pe) {
          continue;
        }
        add(runs, ino, at, ps, r.shareability(), target);
        add(runs, ino, ps, pe, r.shareability(), Shareability.NONE);
        at = pe;
      }
      add(runs, ino, at, r.end(), r.shareability(), target);
    }
    return runs;
  }

  private static void add(List<Conversion> runs, long ino, long start, long end, Shareability from, Shareability to) {
    if (start < end && from != to) {
      runs.add(new Conversion(new GmemPage(ino, start), end - start, from, to));
    }
  }

  /** Asks the arch about each run; a refusal aborts the runs accepted so far and propagates. */
  void veto(List<Conversion> runs) {
    try {
      for (Conversion c : runs) {
        accepted.add(arch.prepareConversion(c));
      }
    } catch (RuntimeException e) {
      abort();
      throw e;
    }
  }

  /** A later step failed: the arch undoes what it reserved. */
  void abort() {
    for (Prepared p : accepted) {
      p.abort();
    }
    accepted.clear();
  }

  /** After the point of no return. */
  void commit() {
    for (Prepared p : accepted) {
      p.commit();
    }
  }

  /** The arch's policy for busy pages of a to-private conversion of {@code [start, end)}. */
  ArchHooks.BusyPolicy busyPolicy(long start, long end, List<ShareabilityRange> before) {
    return arch.busyReferences(new Conversion(new GmemPage(ino, start), end - start, before.get(0).shareability(), Shareability.PRIVATE));
  }
}
