package dev.gmem.api;

import java.nio.ByteBuffer;
import java.util.List;
import java.util.Optional;

/**
 * A VM of one {@link VmType}. On the kvm backend it owns a real KVM VM fd. Files it creates are
 * bound to it for life; memslots bind its GPA space to file ranges.
 *
 * <p>Closing the VM drops its memslots and vCPUs. Like the kernel, it does not free guest memory:
 * files and inodes live on while a file or mapping references them.
 *
 * <p>A VM whose arch hit {@code KVM_BUG_ON} is {@link #isDead() dead}: every later call on it, its
 * vCPUs and the files it created fails with EIO; closing them still works.
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
   * memory alive until it is deleted or the VM closes, even after the file is closed. Flags that
   * active features contribute ({@link dev.gmem.api.spi.FeatureProvider#memslotFlags()}) are valid,
   * and re-issuing an existing slot unchanged but for those bits changes them in place (KVM
   * Userfault's late toggle); any other change of an existing slot is EINVAL, as in the kernel.
   */
  Memslot setMemoryRegion(int slot, int flags, long gpa, long size, GuestMemFile file, long offset);

  /**
   * Deletes memslot {@code slot} ({@code KVM_SET_USER_MEMORY_REGION2} with size 0): EINVAL when
   * it does not exist. The slot's reference on its file's memory goes with it.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default Memslot deleteMemoryRegion(int slot) {
    Memslot old = memslots().stream().filter(m -> m.slot() == slot).findFirst()
        .orElseThrow(() -> GmemException.einval("deleting slot " + slot + " which does not exist"));
    return setMemoryRegion(slot, old.flags(), old.gpa(), 0, old.file(), old.offset());
  }

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

  /**
   * The VMM's view of guest memory by GPA across this VM's memslots, with the host's access rules
   * (see {@link GuestMemory}).
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default GuestMemory guestMemory() {
    throw new GmemException(Errno.EOPNOTSUPP, "this gmem implementation has no GPA view");
  }

  /**
   * {@code kvm_gmem_populate} as the launch ioctls drive it ({@code KVM_TDX_INIT_MEM_REGION},
   * {@code KVM_SEV_SNP_LAUNCH_UPDATE}): places the initial contents of {@code npages} private pages
   * from {@code gpa} through the arch's post-populate callback, which measures or encrypts them.
   * {@code source} holds {@code npages * 4096} bytes from its position (read, and written back
   * where the firmware corrects a page), or is null to populate in place from the pages' current
   * contents. {@code flags} are the arch's (measure, page type).
   *
   * <p>Returns the number of pages done, at least 1: fewer than {@code npages} when the range
   * ends at its memslot's end or the arch stopped early (firmware partial progress); the caller
   * resumes at {@code gpa + done * 4096} with the source advanced as far. Errors, all before the
   * first page: EINVAL for an unaligned GPA, {@code npages <= 0}, a too-short source, a GPA
   * outside every memslot, a page that is not private, or flags the arch refuses; EFAULT when the
   * memslot's file was closed; EEXIST for a page already prepared or populated; the arch's errno
   * (EIO, EBUSY) for a failed callback. A failure on a later page ends the call with the pages
   * done before it.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default long populate(long gpa, ByteBuffer source, long npages, long flags) {
    throw new GmemException(Errno.EOPNOTSUPP, "this gmem implementation cannot populate");
  }

  /**
   * The launch-finalize step (TDX {@code KVM_TDX_FINALIZE_VM}, SNP {@code SNP_LAUNCH_FINISH}),
   * handed to the arch, which decides what changes afterwards and what a second call does.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default void finalizeLaunch() {
    throw new GmemException(Errno.EOPNOTSUPP, "this gmem implementation has no launch state");
  }

  /**
   * This VM's arch hooks as {@code type}, when they implement it: how a VMM or a test reaches a
   * plugin's own inspection API (a TDX module's MRTD, an SNP RMP) without a cast.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default <T> Optional<T> arch(Class<T> type) {
    return Optional.empty();
  }

  /** Whether the arch declared the VM dead ({@code KVM_BUG_ON}). */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default boolean isDead() {
    return false;
  }

  boolean isOpen();

  @Override
  void close();
}
