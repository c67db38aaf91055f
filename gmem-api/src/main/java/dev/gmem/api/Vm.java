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
 * <p>A VM whose arch hit {@code KVM_BUG_ON}, or whose context was moved to another VM, is
 * {@link #isDead() dead}: every later call on it and on its vCPUs fails with EIO; closing still
 * works, and its files stay usable as files.
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

  /**
   * {@code KVM_LINK_GUEST_MEMFD} (RFC v2, issued on this, the destination VM): a new file of this
   * VM over the same inode as {@code src} — the same memory, shareability and filemap, nothing
   * copied — for intra-host migration. Checks in the RFC's order: {@code flags} ≠ 0 → EINVAL;
   * {@code src} not an open guest_memfd file of this runtime → EINVAL (the RFC answers a bad fd
   * with EINVAL too, not EBADF); {@code src} already belongs to this VM → EINVAL. gmem then refuses
   * a source VM of another {@link VmType} with EINVAL, which the RFC leaves to the context move.
   * A closed VM fails with EBADF, one whose context was moved away with EIO.
   *
   * <p>This VM may bind the new file in memslots at once, but it may not fault private memory
   * through it (memory-fault exit) nor run a vCPU ({@code KVM_RUN} → EINVAL, as for a TD or SEV
   * guest whose context is not there yet) until {@link #moveEncryptionContextFrom} has moved the
   * source's context here. Punch and conversion through any file zap every file's mappings;
   * closing the source VM or its files frees nothing while this file lives.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default GuestMemFile linkGuestMemFile(GuestMemFile src, long flags) {
    throw new GmemException(Errno.ENOTTY, "KVM_LINK_GUEST_MEMFD is not implemented by " + getClass().getName());
  }

  /**
   * {@code KVM_ENABLE_CAP(KVM_CAP_VM_MOVE_ENC_CONTEXT_FROM)} with the RFC v2 memory-context move,
   * on this, the destination VM. Checks in the kernel's order: this VM closed → EBADF, its context
   * moved away → EIO; {@code source} not an open VM of this runtime → EBADF; another VM type →
   * EINVAL; {@code source} is this VM → EINVAL; either VM already in a move → EBUSY; the source
   * has no context left (it was moved away) → EINVAL; the memslot layouts differ (address space
   * 0, in GPA order: GPA, size, flags, file offset and inode must match pairwise) → EINVAL; the
   * arch's {@link dev.gmem.api.spi.ArchHooks#moveEncryptionContextFrom veto}. A failed call changes
   * nothing.
   *
   * <p>Then, atomically for both VMs: the moved inodes' encryption context (the arch's per-VM
   * state; memory attributes already live on the inode) belongs to this VM, which may now fault
   * private memory and run; the source is dead like after {@code kvm_vm_dead}: every later call on
   * it and on its vCPUs, {@code KVM_RUN} and software-vCPU accesses included, fails with EIO. Its
   * files stay usable as files (fallocate, mmap, conversion), since memory is the inode's. Cost:
   * O(memslots + files), independent of guest memory size.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default void moveEncryptionContextFrom(Vm source) {
    throw new GmemException(Errno.ENOTTY, "KVM_CAP_VM_MOVE_ENC_CONTEXT_FROM is not implemented by " + getClass().getName());
  }

  /** The memslots in slot order. */
  List<Memslot> memslots();

  /**
   * The memslot of address space 0 whose GPA range holds {@code gpa}, or null: KVM's
   * {@code gfn_to_memslot}, for a VMM that serves an exit by its GPA. The default scans
   * {@link #memslots()}; gmem's runtime looks the GPA up in its sorted table without a lock or a copy.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default Memslot memslotAt(long gpa) {
    for (Memslot m : memslots()) {
      if ((m.slot() >>> 16) == 0 && m.containsGpa(gpa)) {
        return m;
      }
    }
    return null;
  }

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

  /** Whether the VM is dead: its arch hit {@code KVM_BUG_ON}, or its context was moved away. */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default boolean isDead() {
    return false;
  }

  boolean isOpen();

  @Override
  void close();
}
