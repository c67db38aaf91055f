package dev.gmem.api.spi;

import dev.gmem.api.Api;
import dev.gmem.api.Shareability;

/**
 * One run of pages that a conversion is about to move from one shareability to another, as the
 * arch sees it in {@link ArchHooks#prepareConversion} and {@link ArchHooks#busyReferences}.
 * {@code to} is {@link Shareability#NONE} for pages parked while host references drain.
 *
 * @param first   the first page of the run
 * @param nrPages pages in the run, at least 1
 * @param from    their shareability now
 * @param to      their shareability once the conversion commits
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public record Conversion(GmemPage first, long nrPages, Shareability from, Shareability to) {
  public Conversion {
    if (nrPages <= 0) {
      throw new IllegalArgumentException("empty conversion run");
    }
  }

  /** Whether the run leaves private use ({@code kvm_arch_gmem_invalidate} applies). */
  public boolean leavesPrivate() {
    return from == Shareability.PRIVATE && to != Shareability.PRIVATE;
  }
}
