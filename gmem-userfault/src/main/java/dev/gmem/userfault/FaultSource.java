package dev.gmem.userfault;

import dev.gmem.api.Api;

/** Where a resolved fault came from. */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public enum FaultSource {
  /** A vCPU access that exited with {@code KVM_MEMORY_EXIT_FLAG_USERFAULT}. */
  VCPU_USERFAULT,
  /** A fault on a userfaultfd-registered host mapping. */
  HOST_UFFD,
  /** A non-vCPU access (GPA view, host-mapping accessors, pins, device emulation) that waited for the page. */
  ASYNC
}
