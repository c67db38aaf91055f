package dev.gmem.core.backend;

import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Kvm;

/**
 * Whether the kernel converts guest_memfd pages in place (upstream "guest_memfd: In-place
 * conversion support"), found by behaviour, never by version: a one-page INIT_SHARED guest_memfd
 * is asked to become shared, which changes nothing. A kernel with per-file attributes answers 0
 * (its early return); 6.18 has no ioctl on a guest_memfd at all (ENOTTY).
 *
 * <p>Where it is present and the kernel offers the VM type with private memory, gmem creates the
 * real guest_memfd with the file's own INIT_SHARED choice (a private page is then unreachable for
 * every host mapping, gmem's own included) and passes conversions through. Otherwise the real
 * guest_memfd must be INIT_SHARED, or no page could ever be shared, and gmem enforces privacy.
 *
 * @param present whether {@code KVM_SET_MEMORY_ATTRIBUTES2} works on a guest_memfd
 */
public record InPlaceConversion(boolean present) {
  public static final InPlaceConversion ABSENT = new InPlaceConversion(false);

  /** Probes on a throw-away DEFAULT VM of {@code device}. */
  public static InPlaceConversion probe(Kvm kvm, Fd device) {
    try (Fd vm = kvm.createVm(device, 0); Fd gmem = kvm.createGuestMemfd(vm, 4096, GmemFlags.MMAP | GmemFlags.INIT_SHARED)) {
      kvm.setMemoryAttributes2(gmem, 0, 4096, 0);
      return new InPlaceConversion(true);
    } catch (GmemException e) {
      return ABSENT;
    }
  }

  /**
   * Whether a VM whose kernel type has private memory ({@code kernelTypePrivate}) gets the
   * kernel's conversion: only then can the kernel refuse host faults on private pages.
   */
  public boolean passesThrough(boolean kernelTypePrivate) {
    return present && kernelTypePrivate;
  }

  /** The flags of the real guest_memfd behind a gmem file created with {@code flags}. */
  public long realFlags(boolean kernelTypePrivate, long flags) {
    return passesThrough(kernelTypePrivate) ? GmemFlags.MMAP | (flags & GmemFlags.INIT_SHARED) : GmemFlags.MMAP | GmemFlags.INIT_SHARED;
  }
}
