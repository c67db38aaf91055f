package dev.gmem.core.memslot;

import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.HostInfo;
import dev.gmem.api.KvmCapability;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Kvm;

/**
 * The host kernel's memslot limits, so that every backend rejects exactly what this machine's KVM
 * rejects. Without KVM, the values of an upstream x86 kernel.
 *
 * @param slots          {@code KVM_CAP_NR_MEMSLOTS}: slot ids are {@code 0..slots-1}
 * @param addressSpaces  memslot address spaces of a VM without private memory
 *                       ({@code KVM_CAP_MULTI_ADDRESS_SPACE}; 2 with SMM, 1 without)
 * @param maxGpaBits     a memslot must end at or below {@code 2^maxGpaBits}
 *                       ({@code kvm_mmu_max_gfn()}: host MAXPHYADDR with TDP, 52 with shadow paging)
 */
public record MemslotLimits(int slots, int addressSpaces, int maxGpaBits) {
  /** {@code KVM_USER_MEM_SLOTS}, x86 with SMM, and the 52 bits of 5-level paging. */
  public static final MemslotLimits UPSTREAM_X86 = new MemslotLimits(MemslotTable.USER_MEM_SLOTS, 2, 52);

  private static final int MIN_PROBED_GPA_BITS = 32;

  /** Asks the kernel: capabilities from the probe, the GPA limit by binding a one-page slot on a scratch VM. */
  public static MemslotLimits probe(HostInfo host, Kvm kvm) {
    if (!host.kvm()) {
      return UPSTREAM_X86;
    }
    long slots = host.capability(KvmCapability.NR_MEMSLOTS);
    long spaces = host.capability(KvmCapability.MULTI_ADDRESS_SPACE);
    return new MemslotLimits(
        slots > 0 ? (int) slots : UPSTREAM_X86.slots(),
        spaces > 1 ? (int) spaces : 1,
        probeMaxGpaBits(kvm));
  }

  /**
   * The largest {@code b} for which a plain one-page slot (userspace_addr 0, which the kernel
   * accepts) may end at {@code 2^b}; tried from 52 down.
   */
  private static int probeMaxGpaBits(Kvm kvm) {
    try (Fd dev = kvm.openDevice(); Fd vm = kvm.createVm(dev, 0)) {
      for (int bits = UPSTREAM_X86.maxGpaBits(); bits >= MIN_PROBED_GPA_BITS; bits--) {
        try {
          kvm.setUserMemoryRegion2(vm, 0, 0, (1L << bits) - Folio.PAGE_SIZE, Folio.PAGE_SIZE, 0, 0, 0);
          kvm.setUserMemoryRegion2(vm, 0, 0, 0, 0, 0, 0, 0);
          return bits;
        } catch (GmemException e) {
          // beyond this kernel's max GFN: try one bit less
        }
      }
    } catch (GmemException e) {
      // no scratch VM: keep the upstream value
    }
    return UPSTREAM_X86.maxGpaBits();
  }
}
