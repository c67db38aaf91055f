package dev.gmem.core.backend;

import dev.gmem.core.sys.Fd;

/**
 * The kernel's own shared/private attributes of a guest_memfd ({@code KVM_SET_MEMORY_ATTRIBUTES2}
 * on kernels with in-place conversion). Where the kernel has them, a conversion passes through:
 * the kernel unmaps, checks references and afterwards refuses host faults on private pages itself.
 */
public interface KernelAttributes {
  /** gmem enforces privacy alone (Linux 6.18): nothing to tell the kernel. */
  KernelAttributes NONE = (memory, offset, size, toPrivate) -> {};

  /**
   * Sets {@code [offset, offset+size)} of {@code memory} private or shared. May fail as the kernel
   * does (EAGAIN with the offending offset, ENOMEM); a failure changes nothing.
   */
  void set(Fd memory, long offset, long size, boolean toPrivate);
}
