package dev.gmem.api;

/**
 * A GPA range bound to a file range ({@code struct kvm_userspace_memory_region2}).
 *
 * <p>EXPERIMENTAL: a record cannot grow without breaking its constructor, and KVM Userfault
 * (proposed) adds a userfault bitmap to the memslot.
 *
 * @param slot   slot id (bits 0-15) and address space (bits 16-31)
 * @param flags  {@code KVM_MEM_*} flags; always includes {@link #GUEST_MEMFD}
 * @param gpa    guest physical base address
 * @param size   bytes
 * @param file   the bound file (a view of one inode, owned by this slot's VM)
 * @param offset offset of the binding in the file
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.1")
public record Memslot(int slot, int flags, long gpa, long size, GuestMemFile file, long offset) {
  public static final int LOG_DIRTY_PAGES = 1;
  public static final int READONLY = 2;
  public static final int GUEST_MEMFD = 4;

  /** Whether {@code gpa} falls in this slot. */
  public boolean containsGpa(long address) {
    return Long.compareUnsigned(address, gpa) >= 0 && Long.compareUnsigned(address - gpa, size) < 0;
  }

  /** The file offset that backs {@code address}. */
  public long fileOffset(long address) {
    return offset + (address - gpa);
  }
}
