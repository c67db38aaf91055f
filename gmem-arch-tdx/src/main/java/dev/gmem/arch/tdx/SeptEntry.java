package dev.gmem.arch.tdx;

import dev.gmem.api.spi.GmemPage;

/**
 * One Secure-EPT leaf of a TD and the PAMT's owner record of the host page behind it.
 *
 * @param gpa   the private guest physical address (no shared bit), 4 KiB aligned
 * @param page  the host page (gmem's page identity standing in for the pfn the PAMT is indexed by)
 * @param level the S-EPT level: 0 for 4 KiB, 1 for 2 MiB ({@code TDX_PS_4K}, {@code TDX_PS_2M})
 * @param state the entry's state
 * @param added whether the page came in with {@code TDH.MEM.PAGE.ADD} (build time) rather than
 *     {@code TDH.MEM.PAGE.AUG}
 */
public record SeptEntry(long gpa, GmemPage page, int level, SeptState state, boolean added) {
  /** The same entry in another state. */
  public SeptEntry with(SeptState s) {
    return new SeptEntry(gpa, page, level, s, added);
  }
}
