package dev.gmem.core.backend;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VmType;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Sys;
import dev.gmem.core.vcpu.VcpuGate;

/** A memfd (shmem) per inode; runs anywhere Linux runs. */
public final class MemfdBackend implements Backend {
  private final Sys sys;

  public MemfdBackend(Sys sys) {
    this.sys = sys;
  }

  @Override
  public String name() {
    return "memfd";
  }

  @Override
  public BackendVm createVm(VmType type) {
    return new BackendVm() {
      @Override
      public Fd createMemory(long size, long flags) {
        return MemoryFds.memfd(sys, size);
      }

      @Override
      public Fd kvmVmFd() {
        return null;
      }

      @Override
      public void setMemoryRegion(int slot, long gpa, long size, long userspaceAddr, Fd memory, long offset, boolean guestMemfd) {}

      @Override
      public Vcpu createVcpu(int id, VcpuGate gate) {
        throw new GmemException(Errno.ENODEV, "the memfd backend has no KVM: use Vm.softwareVcpu() or the kvm backend");
      }

      @Override
      public void close() {}
    };
  }

  @Override
  public void close() {}
}
