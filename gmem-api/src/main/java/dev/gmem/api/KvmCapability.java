package dev.gmem.api;

/** The KVM capabilities gmem probes ({@code KVM_CHECK_EXTENSION} numbers, {@code include/uapi/linux/kvm.h}). */
@Api(status = Api.Status.STABLE, since = "0.1")
public enum KvmCapability {
  NR_MEMSLOTS(10),
  READONLY_MEM(81),
  /** Memslot address spaces of a VM when more than one (x86 SMM); 0 means one. */
  MULTI_ADDRESS_SPACE(118),
  IMMEDIATE_EXIT(136),
  /** {@code KVM_CAP_EXIT_HYPERCALL}: bitmask of hypercalls user space may take ({@code 1 << 12} = MAP_GPA_RANGE). */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  EXIT_HYPERCALL(201),
  USER_MEMORY2(231),
  MEMORY_FAULT_INFO(232),
  MEMORY_ATTRIBUTES(233),
  GUEST_MEMFD(234),
  VM_TYPES(235),
  PRE_FAULT_MEMORY(236),
  GUEST_MEMFD_FLAGS(244),
  /** In-place conversion series v7 ({@code KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES}); 0 on kernels without it. */
  GUEST_MEMFD_MEMORY_ATTRIBUTES(249);

  private final int number;

  KvmCapability(int number) {
    this.number = number;
  }

  public int number() {
    return number;
  }
}
