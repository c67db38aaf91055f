package dev.gmem.arch.snp;

import dev.gmem.api.Api;

/**
 * One Reverse Map Table entry as the SEV-SNP hardware keeps it per host page (AMD APM vol. 2,
 * §15.36.3): whether a guest owns the page, whether the guest validated it (PVALIDATE), the page
 * size of the entry (4 KiB, or 2 MiB when it covers a whole naturally aligned 2 MiB page), whether
 * it is immutable (pages the firmware owns, and launch pages until {@code SNP_LAUNCH_FINISH}), the
 * owner's ASID and the guest physical address the page is assigned at. Each 4 KiB page of a 2 MiB
 * entry reports the entry's size and its own GPA.
 *
 * @param assigned  guest-owned (false: hypervisor-owned, the host may access it)
 * @param validated the guest's PVALIDATE state
 * @param order     0 (4 KiB) or 9 (2 MiB)
 * @param immutable firmware-owned or a launch page before LAUNCH_FINISH
 * @param asid      the owning guest's ASID, 0 when unassigned
 * @param gpa       the page's guest physical address, 0 when unassigned
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public record RmpEntry(boolean assigned, boolean validated, int order, boolean immutable, int asid, long gpa) {
  /** A hypervisor-owned page's entry. */
  public static final RmpEntry HYPERVISOR = new RmpEntry(false, false, 0, false, 0, 0);

  /** The 2 MiB RMP page order. */
  public static final int ORDER_2M = 9;

  public boolean is2M() {
    return order == ORDER_2M;
  }

  @Override
  public String toString() {
    return assigned
        ? String.format("RmpEntry[assigned, %s, %s%s, asid %d, gpa 0x%x]", validated ? "validated" : "not validated",
            is2M() ? "2M" : "4K", immutable ? ", immutable" : "", asid, gpa)
        : "RmpEntry[hypervisor-owned]";
  }

  RmpEntry withValidated(boolean v) {
    return new RmpEntry(assigned, v, order, immutable, asid, gpa);
  }

  RmpEntry withOrder(int o) {
    return new RmpEntry(assigned, validated, o, immutable, asid, gpa);
  }

  RmpEntry mutable() {
    return new RmpEntry(assigned, validated, order, false, asid, gpa);
  }
}
