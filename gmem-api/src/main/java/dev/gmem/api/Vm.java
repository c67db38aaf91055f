package dev.gmem.api;

import java.util.List;

/**
 * A VM of one {@link VmType}. On the kvm backend it owns a real KVM VM fd. Files it creates are
 * bound to it for life; memslots bind its GPA space to file ranges.
 *
 * <p>Closing the VM drops its memslots and vCPUs. Like the kernel, it does not free guest memory:
 * files and inodes live on while a file or mapping references them.
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public interface Vm extends AutoCloseable {

  VmType type();

  /**
   * The creation flags this VM accepts ({@code KVM_CAP_GUEST_MEMFD_FLAGS} at VM scope): the base
   * flags the VM type allows plus what present plugins contribute.
   */
  long supportedGuestMemFlags();

  /**
   * Creates a guest_memfd file ({@code KVM_CREATE_GUEST_MEMFD}). Checks in the kernel's order:
   * unsupported flag → EINVAL; size ≤ 0 or not page aligned → EINVAL; allocator alignment → EINVAL.
   */
  GuestMemFile createGuestMemFile(long size, long flags);

  /**
   * {@code KVM_SET_USER_MEMORY_REGION2} with {@code KVM_MEM_GUEST_MEMFD}: binds
   * {@code [gpa, gpa+size)} to {@code [offset, offset+size)} of {@code file}; size 0 deletes the slot.
   * Errors follow the kernel's binding table (EINVAL, EEXIST for GPA overlap, EBADF for a closed file)
   * and this host kernel's limits (slot ids, address spaces, largest GPA). A slot keeps its file's
   * memory alive until it is deleted or the VM closes, even after the file is closed.
   */
  Memslot setMemoryRegion(int slot, int flags, long gpa, long size, GuestMemFile file, long offset);

  /** The memslots in slot order. */
  List<Memslot> memslots();

  /** The highest slot id + 1 ({@code KVM_CAP_NR_MEMSLOTS}). */
  int maxMemslots();

  /**
   * A real vCPU ({@code KVM_CREATE_VCPU}) of this VM's KVM VM; ENODEV on the memfd backend, which
   * has no KVM. Ids are unique per VM (EEXIST).
   */
  Vcpu createVcpu(int id);

  /** The software vCPU access path of this VM (every backend). */
  SoftwareVcpu softwareVcpu();

  boolean isOpen();

  @Override
  void close();
}
