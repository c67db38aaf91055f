package dev.gmem.core.sys;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import jnr.ffi.Pointer;

/**
 * The KVM binding: ioctl numbers derived with {@link Ioc} from the struct sizes of
 * {@code include/uapi/linux/kvm.h}, and thin checked wrappers. One place for every KVM ioctl gmem issues.
 */
public final class Kvm {
  public static final int KVMIO = 0xAE;

  public static final long GET_API_VERSION = Ioc.io(KVMIO, 0x00);
  public static final long CREATE_VM = Ioc.io(KVMIO, 0x01);
  public static final long CHECK_EXTENSION = Ioc.io(KVMIO, 0x03);
  public static final long GET_VCPU_MMAP_SIZE = Ioc.io(KVMIO, 0x04);
  public static final long CREATE_VCPU = Ioc.io(KVMIO, 0x41);
  public static final long SET_USER_MEMORY_REGION2 = Ioc.iow(KVMIO, 0x49, 160);
  public static final long RUN = Ioc.io(KVMIO, 0x80);
  public static final long GET_REGS = Ioc.ior(KVMIO, 0x81, 144);
  public static final long SET_REGS = Ioc.iow(KVMIO, 0x82, 144);
  public static final long GET_SREGS = Ioc.ior(KVMIO, 0x83, 312);
  public static final long SET_SREGS = Ioc.iow(KVMIO, 0x84, 312);
  public static final long SET_MEMORY_ATTRIBUTES = Ioc.iow(KVMIO, 0xd2, 32);
  /** In-place conversion series (v7/v8): same nr as the VM ioctl, told apart by direction and size. */
  public static final long SET_MEMORY_ATTRIBUTES2 = Ioc.iowr(KVMIO, 0xd2, 128);
  public static final long CREATE_GUEST_MEMFD = Ioc.iowr(KVMIO, 0xd4, 64);
  public static final long ENABLE_CAP = Ioc.iow(KVMIO, 0xa3, 104);
  /** {@code KVM_LINK_GUEST_MEMFD} as numbered in its RFC v2 (0xd5 in v1, since taken by KVM_PRE_FAULT_MEMORY). */
  public static final long LINK_GUEST_MEMFD = Ioc.iowr(KVMIO, 0xd6, 64);

  public static final int API_VERSION = 12;
  public static final int MEM_GUEST_MEMFD = 1 << 2;
  public static final long MEMORY_ATTRIBUTE_PRIVATE = 1L << 3;
  /** {@code KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES} as numbered in the in-place conversion series v7. */
  public static final int CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES = 249;
  /** {@code KVM_CAP_EXIT_HYPERCALL}: VM scope, returns the hypercalls user space may take ({@code 1 << nr}). */
  public static final int CAP_EXIT_HYPERCALL = 201;

  /** {@code struct kvm_run} offsets (x86_64). */
  public static final class Run {
    public static final int IMMEDIATE_EXIT = 1;
    public static final int EXIT_REASON = 8;
    public static final int IO_DIRECTION = 32;
    public static final int IO_SIZE = 33;
    public static final int IO_PORT = 34;
    public static final int IO_COUNT = 36;
    public static final int IO_DATA_OFFSET = 40;
    public static final int MMIO_PHYS_ADDR = 32;
    public static final int MMIO_DATA = 40;
    public static final int MMIO_LEN = 48;
    public static final int MMIO_IS_WRITE = 52;
    public static final int MEMORY_FAULT_FLAGS = 32;
    public static final int MEMORY_FAULT_GPA = 40;
    public static final int MEMORY_FAULT_SIZE = 48;
    public static final int INTERNAL_SUBERROR = 32;
    public static final int INTERNAL_NDATA = 36;
    public static final int INTERNAL_DATA = 40;
    public static final int FAIL_ENTRY_REASON = 32;
    public static final int SYSTEM_EVENT_TYPE = 32;
    public static final int HYPERCALL_NR = 32;
    public static final int HYPERCALL_ARGS = 40;
    public static final int HYPERCALL_RET = 88;
    public static final int HYPERCALL_FLAGS = 96;

    /** {@code io.direction} values. */
    public static final int IO_IN = 0;
    public static final int IO_OUT = 1;
    /** Capacity of {@code internal.data[]}. */
    public static final int INTERNAL_DATA_MAX = 16;

    /** {@code KVM_EXIT_*} values gmem decodes. */
    public static final int EXIT_IO = 2;
    public static final int EXIT_HYPERCALL = 3;
    public static final int EXIT_HLT = 5;
    public static final int EXIT_MMIO = 6;
    public static final int EXIT_SHUTDOWN = 8;
    public static final int EXIT_FAIL_ENTRY = 9;
    public static final int EXIT_INTR = 10;
    public static final int EXIT_INTERNAL_ERROR = 17;
    public static final int EXIT_SYSTEM_EVENT = 24;
    public static final int EXIT_MEMORY_FAULT = 39;

    private Run() {}
  }

  private final Sys sys;

  public Kvm(Sys sys) {
    this.sys = sys;
  }

  public Sys sys() {
    return sys;
  }

  public Fd openDevice() {
    return new Fd(sys, sys.open("/dev/kvm", Sys.O_RDWR | Sys.O_CLOEXEC), "/dev/kvm");
  }

  public int apiVersion(Fd kvm) {
    return sys.ioctl(kvm.get(), GET_API_VERSION, 0L, "KVM_GET_API_VERSION");
  }

  /** KVM_CHECK_EXTENSION on /dev/kvm or a VM fd; 0 means unsupported. */
  public long checkExtension(Fd fd, int cap) {
    return sys.ioctl(fd.get(), CHECK_EXTENSION, (long) cap, "KVM_CHECK_EXTENSION");
  }

  public Fd createVm(Fd kvm, int type) {
    return new Fd(sys, sys.ioctl(kvm.get(), CREATE_VM, (long) type, "KVM_CREATE_VM"), "kvm-vm");
  }

  public int vcpuMmapSize(Fd kvm) {
    return sys.ioctl(kvm.get(), GET_VCPU_MMAP_SIZE, 0L, "KVM_GET_VCPU_MMAP_SIZE");
  }

  /** KVM_CREATE_GUEST_MEMFD on a VM fd. */
  public Fd createGuestMemfd(Fd vm, long size, long flags) {
    KvmStructs.CreateGuestMemfd arg = KvmStructs.allocate(sys, new KvmStructs.CreateGuestMemfd(sys.runtime()));
    arg.size.set(size);
    arg.flags.set(flags);
    int fd = sys.ioctl(vm.get(), CREATE_GUEST_MEMFD, KvmStructs.memory(arg), "KVM_CREATE_GUEST_MEMFD");
    return new Fd(sys, fd, "guest_memfd");
  }

  /**
   * KVM_SET_MEMORY_ATTRIBUTES2 on a guest_memfd (kernels with in-place conversion): sets the
   * attributes of {@code [offset, offset+size)}. A failure carries the kernel's
   * {@code error_offset} where it reports one (EAGAIN, ENOMEM).
   */
  public void setMemoryAttributes2(Fd gmem, long offset, long size, long attributes) {
    KvmStructs.MemoryAttributes2 arg = KvmStructs.allocate(sys, new KvmStructs.MemoryAttributes2(sys.runtime()));
    arg.offset.set(offset);
    arg.size.set(size);
    arg.attributes.set(attributes);
    try {
      sys.ioctl(gmem.get(), SET_MEMORY_ATTRIBUTES2, KvmStructs.memory(arg), "KVM_SET_MEMORY_ATTRIBUTES2");
    } catch (GmemException e) {
      if (e.errno() == Errno.EAGAIN || e.errno() == Errno.ENOMEM) {
        throw GmemException.atOffset(e.errno(), arg.errorOffset.get(), e.getMessage());
      }
      throw e;
    }
  }

  /**
   * {@code KVM_LINK_GUEST_MEMFD} on a (destination) VM fd with flags 0: the raw result, which on a
   * kernel that has the RFC is a new guest_memfd over {@code source}'s inode. Callers must check
   * that by behaviour: on other kernels the number is unassigned (ENOTTY) or may mean something else.
   */
  public int linkGuestMemfd(Fd vm, Fd source) {
    KvmStructs.LinkGuestMemfd arg = KvmStructs.allocate(sys, new KvmStructs.LinkGuestMemfd(sys.runtime()));
    arg.fd.set(source.get());
    return sys.ioctl(vm.get(), LINK_GUEST_MEMFD, KvmStructs.memory(arg), "KVM_LINK_GUEST_MEMFD");
  }

  /** KVM_SET_USER_MEMORY_REGION2; {@code memorySize} 0 deletes the slot. */
  public void setUserMemoryRegion2(
      Fd vm, int slot, int flags, long gpa, long memorySize, long userspaceAddr, int guestMemfd, long guestMemfdOffset) {
    setUserMemoryRegion2(vm, slot, flags, gpa, memorySize, userspaceAddr, guestMemfd, guestMemfdOffset, 0);
  }

  /**
   * {@code KVM_SET_USER_MEMORY_REGION2} with KVM Userfault's {@code userfault_bitmap} (v3: the
   * first u64 of what 6.18 calls {@code pad2}, which 6.18 requires to be zero).
   */
  public void setUserMemoryRegion2(
      Fd vm, int slot, int flags, long gpa, long memorySize, long userspaceAddr, int guestMemfd, long guestMemfdOffset,
      long userfaultBitmap) {
    KvmStructs.UserspaceMemoryRegion2 r = KvmStructs.allocate(sys, new KvmStructs.UserspaceMemoryRegion2(sys.runtime()));
    r.slot.set(slot);
    r.flags.set(flags);
    r.guestPhysAddr.set(gpa);
    r.memorySize.set(memorySize);
    r.userspaceAddr.set(userspaceAddr);
    r.guestMemfd.set(guestMemfd);
    r.guestMemfdOffset.set(guestMemfdOffset);
    r.pad2[0].set(userfaultBitmap);
    sys.ioctl(vm.get(), SET_USER_MEMORY_REGION2, KvmStructs.memory(r), "KVM_SET_USER_MEMORY_REGION2");
  }

  /** {@code KVM_ENABLE_CAP} on a VM or vCPU fd with {@code args[0]}. */
  public void enableCap(Fd fd, int cap, long arg0) {
    KvmStructs.EnableCap c = KvmStructs.allocate(sys, new KvmStructs.EnableCap(sys.runtime()));
    c.cap.set(cap);
    c.args[0].set(arg0);
    sys.ioctl(fd.get(), ENABLE_CAP, KvmStructs.memory(c), "KVM_ENABLE_CAP");
  }

  /**
   * Lets user space take {@code KVM_HC_MAP_GPA_RANGE} ({@code KVM_CAP_EXIT_HYPERCALL}) where the
   * kernel offers it, as a VMM that converts on the guest's request does; without it the guest
   * gets {@code -KVM_ENOSYS}. Returns whether it is on.
   */
  public boolean enableMapGpaRangeExits(Fd vm) {
    long mask = 1L << dev.gmem.api.VcpuExit.Hypercall.MAP_GPA_RANGE;
    long offered;
    try {
      offered = checkExtension(vm, CAP_EXIT_HYPERCALL);
    } catch (GmemException e) {
      return false;
    }
    if ((offered & mask) == 0) {
      return false;
    }
    enableCap(vm, CAP_EXIT_HYPERCALL, mask);
    return true;
  }

  public Fd createVcpu(Fd vm, int id) {
    return new Fd(sys, sys.ioctl(vm.get(), CREATE_VCPU, (long) id, "KVM_CREATE_VCPU"), "kvm-vcpu");
  }

  /**
   * KVM_RUN. A failure throws; the exception's raw errno (EFAULT/EHWPOISON together with exit
   * reason 39 in kvm_run) is how the caller tells a MEMORY_FAULT exit from a real error.
   */
  public int run(Fd vcpu) throws GmemException {
    return sys.ioctl(vcpu.get(), RUN, 0L, "KVM_RUN");
  }

  public void getRegs(Fd vcpu, KvmStructs.Regs regs) {
    sys.ioctl(vcpu.get(), GET_REGS, KvmStructs.memory(regs), "KVM_GET_REGS");
  }

  public void setRegs(Fd vcpu, KvmStructs.Regs regs) {
    sys.ioctl(vcpu.get(), SET_REGS, KvmStructs.memory(regs), "KVM_SET_REGS");
  }

  public void getSregs(Fd vcpu, KvmStructs.Sregs sregs) {
    sys.ioctl(vcpu.get(), GET_SREGS, KvmStructs.memory(sregs), "KVM_GET_SREGS");
  }

  public void setSregs(Fd vcpu, KvmStructs.Sregs sregs) {
    sys.ioctl(vcpu.get(), SET_SREGS, KvmStructs.memory(sregs), "KVM_SET_SREGS");
  }

  public Pointer pointer(long address) {
    return sys.pointer(address);
  }
}
