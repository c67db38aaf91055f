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
 *
 * <p>Where the kernel has no guest_memfd gmem can map and share ({@link BackendSelector#realGuestMemfd}:
 * not built in, or without MMAP|INIT_SHARED), an inode's memory is a memfd, as on the memfd
 * backend, and memslots bind gmem's mapping of it as plain user memory: the VM and its vCPUs are
 * still real, and everything a guest_memfd means above the kernel is gmem's either way.
 */
public final class KvmBackend implements Backend {
  private final Kvm kvm;
  private final HostInfo host;
  private final Fd device;
  private final InPlaceConversion inPlace;
  private final GuestMemfdLinks links;
  /** Whether inodes get a real guest_memfd, else a memfd. */
  private final boolean realGuestMemfd;

  public KvmBackend(Kvm kvm, HostInfo host) {
    this.kvm = kvm;
    this.host = host;
    this.device = kvm.openDevice();
    this.realGuestMemfd = BackendSelector.realGuestMemfd(host);
    this.inPlace = realGuestMemfd ? InPlaceConversion.probe(kvm, device) : InPlaceConversion.ABSENT;
    this.links = new GuestMemfdLinks(kvm);
  }

  /** With a given probe result: the pass-through path, testable on a kernel without it. */
  KvmBackend(Kvm kvm, HostInfo host, Fd device, InPlaceConversion inPlace) {
    this.kvm = kvm;
    this.host = host;
    this.device = device;
    this.inPlace = inPlace;
    this.links = new GuestMemfdLinks(kvm);
    this.realGuestMemfd = BackendSelector.realGuestMemfd(host);
  }

  /** What the kernel's in-place conversion probe found. */
  public InPlaceConversion inPlaceConversion() {
    return inPlace;
  }

  @Override
  public String name() {
    return "kvm";
  }

  @Override
  public String conversionReport() {
    if (!realGuestMemfd) {
      return "in-place conversion absent (no guest_memfd to convert in): gmem keeps private pages out of host mappings in user space";
    }
    return "in-place conversion " + (inPlace.present()
        ? "present (KVM_SET_MEMORY_ATTRIBUTES2 on a guest_memfd works): conversions of VM types with private memory pass through to the kernel"
        : "absent (KVM_SET_MEMORY_ATTRIBUTES2 on a guest_memfd fails): gmem keeps private pages out of host mappings in user space");
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
    boolean kernelPrivate = host.kernelOffers(type) && type.hasPrivateMemory();
    KernelAttributes attributes = inPlace.passesThrough(kernelPrivate)
        ? (memory, offset, size, toPrivate) -> kvm.setMemoryAttributes2(memory, offset, size, toPrivate ? Kvm.MEMORY_ATTRIBUTE_PRIVATE : 0)
        : KernelAttributes.NONE;
    return new BackendVm() {
      @Override
      public Fd createMemory(long size, long flags) {
        if (!realGuestMemfd) {
          return MemoryFds.memfd(kvm.sys(), size);
        }
        // NO_DIRECT_MAP goes to a kernel that offers it (the direct-map feature then supplies no memory).
        long passThrough = flags & GmemFlags.NO_DIRECT_MAP & host.guestMemfdFlags();
        return MemoryFds.restricted(kvm.sys(), kvm.createGuestMemfd(vm, size, inPlace.realFlags(kernelPrivate, flags) | passThrough), fd -> {});
      }

      @Override
      public KernelAttributes kernelAttributes() {
        return attributes;
      }

      @Override
      public Fd kvmVmFd() {
        return vm;
      }

      @Override
      public void setMemoryRegion(int slot, long gpa, long size, long userspaceAddr, Fd memory, long offset, boolean guestMemfd) {
        setMemoryRegion(slot, gpa, size, userspaceAddr, memory, offset, guestMemfd, 0, 0);
      }

      @Override
      public void setMemoryRegion(int slot, long gpa, long size, long userspaceAddr, Fd memory, long offset, boolean guestMemfd,
          int kernelFlags, long userfaultBitmap) {
        boolean bind = guestMemfd && realGuestMemfd; // else a memfd: plain user memory at gmem's mapping of it
        kvm.setUserMemoryRegion2(vm, slot, (bind ? Kvm.MEM_GUEST_MEMFD : 0) | kernelFlags, gpa, size, userspaceAddr,
            bind ? memory.get() : 0, bind ? offset : 0, userfaultBitmap);
      }

      @Override
      public Vcpu createVcpu(int id, VcpuGate gate) {
        return KvmVcpu.create(kvm, device, vm, id, gate);
      }

      @Override
      public Fd linkGuestMemfd(Fd source) {
        return realGuestMemfd ? links.link(vm, source) : null;
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
