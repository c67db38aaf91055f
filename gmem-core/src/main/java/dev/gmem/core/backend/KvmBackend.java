package dev.gmem.core.backend;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.HostInfo;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VmType;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Kvm;
import dev.gmem.core.vcpu.KvmVcpu;
import dev.gmem.core.vcpu.VcpuGate;

/**
 * A real KVM VM fd per VM and a real guest_memfd per inode. A VM type the kernel does not offer
 * runs over a real DEFAULT VM, with its rules applied by gmem and the type's arch plugin.
 */
public final class KvmBackend implements Backend {
  private static final long REAL_GMEM_FLAGS = GmemFlags.MMAP | GmemFlags.INIT_SHARED;

  private final Kvm kvm;
  private final HostInfo host;
  private final Fd device;
  private final GuestMemfdLinks links;

  public KvmBackend(Kvm kvm, HostInfo host) {
    this.kvm = kvm;
    this.host = host;
    this.device = kvm.openDevice();
    this.links = new GuestMemfdLinks(kvm);
  }

  @Override
  public String name() {
    return "kvm";
  }

  /** The VM type actually passed to KVM_CREATE_VM for {@code type}. */
  public int kernelTypeFor(VmType type) {
    return host.kernelOffers(type) ? type.kvmType() : VmType.DEFAULT.kvmType();
  }

  @Override
  public BackendVm createVm(VmType type) {
    Fd vm = kvm.createVm(device, kernelTypeFor(type));
    try {
      kvm.enableMapGpaRangeExits(vm);
    } catch (RuntimeException e) {
      vm.close();
      throw e;
    }
    return new BackendVm() {
      @Override
      public Fd createMemory(long size) {
        return kvm.createGuestMemfd(vm, size, REAL_GMEM_FLAGS);
      }

      @Override
      public Fd kvmVmFd() {
        return vm;
      }

      @Override
      public void setMemoryRegion(int slot, long gpa, long size, long userspaceAddr, Fd memory, long offset, boolean guestMemfd) {
        kvm.setUserMemoryRegion2(
            vm, slot, guestMemfd ? Kvm.MEM_GUEST_MEMFD : 0, gpa, size, userspaceAddr, guestMemfd ? memory.get() : 0, guestMemfd ? offset : 0);
      }

      @Override
      public Vcpu createVcpu(int id, VcpuGate gate) {
        return KvmVcpu.create(kvm, device, vm, id, gate);
      }

      @Override
      public Fd linkGuestMemfd(Fd source) {
        return links.link(vm, source);
      }

      @Override
      public void close() {
        vm.close();
      }
    };
  }

  public Kvm kvm() {
    return kvm;
  }

  public Fd device() {
    return device;
  }

  @Override
  public void close() {
    device.close();
  }
}
