package dev.gmem.api;

/**
 * Guest memory access the way a vCPU makes it, in software: GPA → memslot → file → folio, with
 * the kernel's guest-fault rules. An access whose kind (private or shared) disagrees with the
 * page's shareability, or that hits a memslot whose file was closed, does not touch memory and
 * yields a {@link VcpuExit.MemoryFault} ({@code KVM_EXIT_MEMORY_FAULT}); an access outside every
 * memslot yields {@link VcpuExit.Mmio}. The VMM resolves the exit (e.g. converts) and retries.
 *
 * <p>Works on every backend; it is how gmem runs private-memory VM types whose rules the host
 * kernel does not implement. Thread-safe. A private access through a linked file before the VM
 * received the memory's context is a private memory fault; once the VM's own context was moved
 * away ({@link Vm#moveEncryptionContextFrom}) every access throws {@link GmemException} EIO.
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public interface SoftwareVcpu {

  /** Reads {@code len} bytes at {@code gpa}; null on success, else the exit the access raised. */
  VcpuExit read(long gpa, byte[] dst, int dstIndex, int len, boolean privateAccess);

  /** Writes {@code len} bytes at {@code gpa}; null on success, else the exit the access raised. */
  VcpuExit write(long gpa, byte[] src, int srcIndex, int len, boolean privateAccess);

  /** Reads 8 bytes; an exit is thrown as {@link MemoryExitException}. */
  long readLong(long gpa, boolean privateAccess);

  /** Writes 8 bytes; an exit is thrown as {@link MemoryExitException}. */
  void writeLong(long gpa, long value, boolean privateAccess);

  /**
   * The page order a guest fault at {@code gpa} would map with now, as the MMU asks
   * {@code kvm_gmem_mapping_order} and then checks the memslot: the inode's
   * {@link GuestMemInode#mappingOrder mapping order}, lowered until the block is aligned alike in
   * GPA and file offset and lies inside the memslot ({@code disallow_lpage}). -1 outside every
   * memslot.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.1")
  default int mappingOrder(long gpa, boolean privateAccess) {
    return 0;
  }

  /**
   * Guest code issues hypercall {@code nr} with up to six arguments (x86: {@code VMCALL} with
   * {@code rax} = nr, {@code rbx, rcx, rdx, rsi} = args): the VM's arch turns it into the exits
   * the VMM completes (see {@link GuestCall}). With the default arch this is KVM's handling of
   * {@link VcpuExit.Hypercall#MAP_GPA_RANGE} with {@code KVM_CAP_EXIT_HYPERCALL} enabled: one exit
   * for a valid range, {@code -KVM_EINVAL} for a bad one, {@code -KVM_ENOSYS} for other numbers.
   * EIO on a dead VM.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default GuestCall hypercall(long nr, long... args) {
    throw new GmemException(Errno.EOPNOTSUPP, "this software vCPU cannot issue hypercalls");
  }
}
