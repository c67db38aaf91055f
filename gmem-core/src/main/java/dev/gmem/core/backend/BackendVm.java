package dev.gmem.core.backend;

import dev.gmem.api.Vcpu;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.vcpu.VcpuGate;

/** One VM as the backend sees it. */
public interface BackendVm extends AutoCloseable {

  /**
   * Memory for a new inode of {@code size} bytes, for a file created with {@code flags}. The kvm
   * backend creates a real guest_memfd with MMAP|INIT_SHARED where the kernel cannot convert in
   * place (6.18 could never share a non-INIT_SHARED page later; gmem enforces privacy above this
   * layer), and with the file's own INIT_SHARED choice where it can ({@link InPlaceConversion}).
   * The fd is close-on-exec and, where the file system allows, not reopenable through
   * {@code /proc/self/fd} by a process without CAP_DAC_OVERRIDE (mode 000).
   */
  Fd createMemory(long size, long flags);

  /** Where conversions of this VM's memory go to the kernel too; {@link KernelAttributes#NONE} on 6.18. */
  default KernelAttributes kernelAttributes() {
    return KernelAttributes.NONE;
  }

  /** The real KVM VM fd, or null on the memfd backend. */
  Fd kvmVmFd();

  /**
   * Issues the memslot change to the kernel, if there is one ({@code KVM_SET_USER_MEMORY_REGION2});
   * gmem has validated it already. {@code size} 0 deletes.
   */
  void setMemoryRegion(int slot, long gpa, long size, long userspaceAddr, Fd memory, long offset, boolean guestMemfd);

  /**
   * {@link #setMemoryRegion(int, long, long, long, Fd, long, boolean)} with a feature's flag bits
   * the kernel implements itself ({@code kernelFlags}) and KVM Userfault's bitmap address. A
   * backend without a kernel memslot has nothing to pass them to and ignores them.
   */
  default void setMemoryRegion(int slot, long gpa, long size, long userspaceAddr, Fd memory, long offset, boolean guestMemfd,
      int kernelFlags, long userfaultBitmap) {
    setMemoryRegion(slot, gpa, size, userspaceAddr, memory, offset, guestMemfd);
  }

  /** A real vCPU whose every ioctl passes {@code gate}; ENODEV where there is no KVM. */
  Vcpu createVcpu(int id, VcpuGate gate);

  /**
   * {@code KVM_LINK_GUEST_MEMFD} on this VM for {@code source}, a guest_memfd another VM made, if
   * the kernel has it: a new real guest_memfd on the same inode, bound to this VM. null where the
   * kernel has no such ioctl (6.18) or no real guest_memfd is involved.
   */
  default Fd linkGuestMemfd(Fd source) {
    return null;
  }

  @Override
  void close();
}
