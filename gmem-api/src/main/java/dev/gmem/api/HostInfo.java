package dev.gmem.api;

import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * What the host offers, probed once per runtime from the real kernel (never guessed from a version
 * string). Plugins receive it to decide whether they can run here.
 *
 * <p>EXPERIMENTAL: a record cannot grow without breaking its constructor, and every new host
 * facility gmem probes (exit hypercalls, secret memory, userfaultfd on guest_memfd) adds one.
 *
 * @param kernelRelease      {@code uname -r}
 * @param kvm                whether {@code /dev/kvm} opened
 * @param kvmProblem         why KVM is unusable, when it is
 * @param kvmApiVersion      {@code KVM_GET_API_VERSION} (12), or 0 without KVM
 * @param capabilities       {@code KVM_CHECK_EXTENSION} results on a DEFAULT VM fd
 * @param guestMemfdFlags    {@code KVM_CAP_GUEST_MEMFD_FLAGS} on a DEFAULT VM fd
 * @param vmTypes            {@code KVM_CAP_VM_TYPES} bitmask (bit n = type n)
 * @param userfaultfd        whether the userfaultfd syscall works here
 * @param memfdSecret        whether memfd_secret works here
 * @param hugePagePools      hugetlb pools by size, ascending
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.1")
public record HostInfo(
    String kernelRelease,
    boolean kvm,
    Optional<String> kvmProblem,
    int kvmApiVersion,
    Map<KvmCapability, Long> capabilities,
    long guestMemfdFlags,
    long vmTypes,
    boolean userfaultfd,
    boolean memfdSecret,
    List<HugePagePool> hugePagePools) {

  public HostInfo {
    capabilities = Map.copyOf(capabilities);
    hugePagePools = List.copyOf(hugePagePools);
  }

  /** The capability's value, 0 when unsupported or not probed. */
  public long capability(KvmCapability cap) {
    return capabilities.getOrDefault(cap, 0L);
  }

  /** Whether the kernel offers guest_memfd with at least {@code flags}. */
  public boolean guestMemfdSupports(long flags) {
    return kvm && capability(KvmCapability.GUEST_MEMFD) != 0 && (guestMemfdFlags & flags) == flags;
  }

  /** Whether {@code KVM_CREATE_VM} accepts the type natively. */
  public boolean kernelOffers(VmType type) {
    return kvm && type.kvmType() >= 0 && type.kvmType() < 64 && (vmTypes & (1L << type.kvmType())) != 0;
  }

  /** The hugetlb pool of exactly that page size. */
  public Optional<HugePagePool> hugePagePool(long pageSize) {
    return hugePagePools.stream().filter(p -> p.pageSize() == pageSize).findFirst();
  }
}
