package dev.gmem.api.spi;

import dev.gmem.api.Api;
import dev.gmem.api.Folio;

/**
 * The identity of one page of guest memory: its inode and its page index there. One
 * {@link ArchHooks} instance serves every inode of a VM, so an arch that keeps per-page state (an
 * SNP RMP, a TDX PAMT, pKVM's stage-2 ownership — all keyed by host pfn in the kernel) keys it by
 * this, not by the bare index.
 *
 * <p>Unique per host page within a runtime: inode numbers are never reused, and a page index gets
 * a new frame only after the old one was freed, which the arch hears of first through
 * {@link ArchHooks#invalidate(GmemPage, long)}. A page the arch reports as leaked
 * ({@link ArchContext#leak}) keeps its index for good (it is never refaulted), so its identity is
 * never reused either. It survives linking the inode to another VM ({@code KVM_LINK_GUEST_MEMFD}
 * makes a new file over the same inode), which is what a move of the encryption context needs.
 *
 * @param ino   the inode number ({@link dev.gmem.api.GuestMemInode#ino()})
 * @param index page index in the inode
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public record GmemPage(long ino, long index) {
  public GmemPage {
    if (index < 0) {
      throw new IllegalArgumentException("negative page index " + index);
    }
  }

  /**
   * Written out rather than the record's generated {@code equals}: that one goes through an
   * {@code invokedynamic} method-handle chain, which JFR showed unfolded at the arches' hash-map
   * lookups; written out, a pKVM share/unshare round trip (PkvmBench) went from 830 to 800–813 ns.
   */
  @Override
  public boolean equals(Object o) {
    return o instanceof GmemPage p && p.ino == ino && p.index == index;
  }

  @Override
  public int hashCode() {
    return Long.hashCode(ino) * 31 + Long.hashCode(index);
  }

  /** The page {@code n} pages further in the same inode. */
  public GmemPage plus(long n) {
    return new GmemPage(ino, index + n);
  }

  /** Byte offset of the page in its inode. */
  public long offset() {
    return index << Folio.PAGE_SHIFT;
  }

  @Override
  public String toString() {
    return "ino " + ino + " page " + index;
  }
}
