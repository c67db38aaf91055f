package dev.gmem.userfault;

import dev.gmem.api.Errno;
import dev.gmem.userfault.uffd.Native;
import dev.gmem.userfault.uffd.libc.UffdLibC;
import jnr.ffi.Pointer;

/**
 * Whether the kernel has KVM Userfault, by behaviour: {@code KVM_CAP_USERFAULT}'s number is not
 * reliable (Firecracker's out-of-tree 245 collides with mainline's), so a scratch VM binds a
 * one-page guest_memfd memslot — first without any flag (the control: the setup itself works),
 * then, in another slot, with {@code KVM_MEM_USERFAULT} and a bitmap in {@code userfault_bitmap}.
 * A kernel without guest_memfd (where gmem's kvm backend binds plain user memory) is asked the same
 * about a plain memslot, as the flag is the memslot's, whatever its memory.
 * Present only when the kernel accepts the second; absent when it refuses it while it accepted the
 * control (6.18: EINVAL, the unknown flag and the non-zero {@code pad2}); undecided — and treated as
 * absent — when even the control fails.
 */
final class KvmUserfaultProbe {
  private static final long KVM_CREATE_VM = 0xAE01L;
  private static final long KVM_CREATE_GUEST_MEMFD = 0xC040AED4L;
  private static final long KVM_SET_USER_MEMORY_REGION2 = 0x40A0AE49L;
  private static final int KVM_MEM_GUEST_MEMFD = 1 << 2;
  private static final long PAGE = 4096;

  /**
   * The probe's answer and its grounds.
   *
   * @param control  errno of the flagless control binding, 0 when it succeeded, -1 when not reached
   * @param flagged  errno of the binding with KVM_MEM_USERFAULT, 0 when it succeeded, -1 when not reached
   */
  record Result(boolean present, int control, int flagged, String reason) {}

  private KvmUserfaultProbe() {}

  static Result probe() {
    UffdLibC c = Native.libc();
    int kvm = c.open("/dev/kvm", 2 | 0x80000, 0);
    if (kvm < 0) {
      return new Result(false, -1, -1, "absent: /dev/kvm cannot be opened (errno " + Native.errno() + ")");
    }
    int vm = -1;
    int gmem = -1;
    try {
      vm = c.ioctl(kvm, KVM_CREATE_VM, 0L);
      if (vm < 0) {
        return new Result(false, -1, -1, "absent: no scratch VM (KVM_CREATE_VM errno " + Native.errno() + ")");
      }
      Pointer create = Native.allocate(64);
      create.putLong(0, 2 * PAGE);
      gmem = c.ioctl(vm, KVM_CREATE_GUEST_MEMFD, create);
      String kind = "guest_memfd memslot";
      int memoryFlag = KVM_MEM_GUEST_MEMFD;
      long uaddr = 0; // a gmem-only slot needs none
      Pointer plain = null;
      if (gmem < 0) {
        int err = Native.errno();
        if (Errno.of(err) != Errno.ENOTTY) {
          return new Result(false, -1, -1, "absent (undecided): KVM_CREATE_GUEST_MEMFD failed with " + Errno.of(err));
        }
        kind = "plain memslot (this kernel has no guest_memfd)";
        memoryFlag = 0;
        plain = Native.allocate((int) (3 * PAGE)); // never touched: the kernel only checks the address
        uaddr = (plain.address() + PAGE - 1) & -PAGE;
      }
      int control = bind(c, vm, 0, 0, gmem, memoryFlag, uaddr, 0);
      if (control != 0) {
        return new Result(false, control, -1, "absent (undecided): the flagless " + kind + " itself was refused with " + Errno.of(control));
      }
      Pointer bitmap = Native.allocate(8);
      int flagged = bind(c, vm, 1, PAGE, gmem, memoryFlag | Userfault.MEM_USERFAULT, uaddr == 0 ? 0 : uaddr + PAGE, bitmap.address());
      if (flagged == 0) {
        return new Result(true, 0, 0, "present: KVM_SET_USER_MEMORY_REGION2 accepted KVM_MEM_USERFAULT with a userfault_bitmap on a " + kind);
      }
      return new Result(false, 0, flagged, "absent: KVM_SET_USER_MEMORY_REGION2 refused KVM_MEM_USERFAULT (bit 3) with a userfault_bitmap with "
          + Errno.of(flagged) + ", and accepted the same " + kind + " without them");
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

  /**
   * One page as slot {@code slot} at GPA {@code offset}: of guest_memfd {@code gmem} at that file
   * offset where {@code flags} has KVM_MEM_GUEST_MEMFD, else user memory at {@code uaddr}; 0 or the errno.
   */
  private static int bind(UffdLibC c, int vm, int slot, long offset, int gmem, int flags, long uaddr, long bitmap) {
    Pointer region = Native.allocate(160);
    region.putInt(0, slot);
    region.putInt(4, flags);
    region.putLong(8, offset); // guest_phys_addr
    region.putLong(16, PAGE); // memory_size
    region.putLong(24, uaddr);
    region.putLong(32, (flags & KVM_MEM_GUEST_MEMFD) != 0 ? offset : 0); // guest_memfd_offset
    region.putInt(40, (flags & KVM_MEM_GUEST_MEMFD) != 0 ? gmem : 0);
    region.putLong(48, bitmap); // userfault_bitmap (v3: the first word of 6.18's pad2)
    return c.ioctl(vm, KVM_SET_USER_MEMORY_REGION2, region) == 0 ? 0 : Native.errno();
  }
}
