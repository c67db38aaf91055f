package dev.gmem.userfault;

import dev.gmem.userfault.uffd.Native;
import dev.gmem.userfault.uffd.libc.UffdLibC;
import jnr.ffi.Pointer;

/**
 * Whether the kernel has KVM Userfault, by behaviour: {@code KVM_CAP_USERFAULT}'s number is not
 * reliable (Firecracker's out-of-tree 245 collides with mainline's), so a scratch VM binds a
 * one-page guest_memfd memslot with {@code KVM_MEM_USERFAULT} and a bitmap. A kernel without it
 * refuses the unknown flag with EINVAL (6.18).
 */
final class KvmUserfaultProbe {
  private static final long KVM_CREATE_VM = 0xAE01L;
  private static final long KVM_CREATE_GUEST_MEMFD = 0xC040AED4L;
  private static final long KVM_SET_USER_MEMORY_REGION2 = 0x40A0AE49L;
  private static final int KVM_MEM_GUEST_MEMFD = 1 << 2;

  private KvmUserfaultProbe() {}

  static boolean kernelHasUserfault() {
    UffdLibC c = Native.libc();
    int kvm = c.open("/dev/kvm", 2 | 0x80000, 0);
    if (kvm < 0) {
      return false;
    }
    int vm = -1;
    int gmem = -1;
    try {
      vm = c.ioctl(kvm, KVM_CREATE_VM, 0L);
      if (vm < 0) {
        return false;
      }
      Pointer create = Native.allocate(64);
      create.putLong(0, 4096);
      gmem = c.ioctl(vm, KVM_CREATE_GUEST_MEMFD, create);
      if (gmem < 0) {
        return false;
      }
      Pointer bitmap = Native.allocate(8);
      Pointer region = Native.allocate(160);
      region.putInt(0, 0);
      region.putInt(4, KVM_MEM_GUEST_MEMFD | Userfault.MEM_USERFAULT);
      region.putLong(8, 0);
      region.putLong(16, 4096);
      region.putLong(24, 0);
      region.putLong(32, 0);
      region.putInt(40, gmem);
      region.putLong(48, bitmap.address()); // userfault_bitmap (v3: first word of the old pad2)
      return c.ioctl(vm, KVM_SET_USER_MEMORY_REGION2, region) == 0;
    } finally {
      if (gmem >= 0) {
        c.close(gmem);
      }
      if (vm >= 0) {
        c.close(vm);
      }
      c.close(kvm);
    }
  }
}
