package dev.gmem.api;

import java.util.List;
import java.util.Optional;

/**
 * One VM's view of a {@link GuestMemInode}, bound immutably to the VM that created it. Memslots
 * bind to files. Closing a file never frees memory; any call after close fails with EBADF.
 *
 * <p>Units: like the syscalls it mirrors, every position here is a byte offset into the file
 * ({@code offset}) and every extent a byte count ({@code length}); {@link GuestMemInode} speaks
 * in page indices instead.
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public interface GuestMemFile extends AutoCloseable {

  Vm vm();

  GuestMemInode inode();

  long size();

  long flags();

  FileStat stat();

  /**
   * {@code fallocate(2)} with the kernel's rules: mode without KEEP_SIZE or with any bit beyond
   * KEEP_SIZE|PUNCH_HOLE → EOPNOTSUPP; unaligned offset/len → EINVAL; allocation past EOF →
   * EINVAL; punching past EOF succeeds. Punching frees the pages, zaps host and guest mappings of
   * every file of the inode and leaves shareability unchanged. With huge folios (upstream's
   * hugetlb rules) pages of a partly punched huge page are zeroed only, and a wholly punched huge
   * page is freed — or, when a page of it is pinned, the call fails with EAGAIN at that page's
   * offset and changes nothing.
   */
  void fallocate(int mode, long offset, long length);

  /** {@code fallocate(KEEP_SIZE|PUNCH_HOLE, offset, length)}. */
  default void punchHole(long offset, long length) {
    fallocate(Fallocate.KEEP_SIZE | Fallocate.PUNCH_HOLE, offset, length);
  }

  /** {@code fallocate(KEEP_SIZE, offset, length)}. */
  default void allocate(long offset, long length) {
    fallocate(Fallocate.KEEP_SIZE, offset, length);
  }

  /**
   * {@code mmap(2)} of the file with the kernel's rules and errno order: without MMAP → ENODEV;
   * MAP_PRIVATE → EINVAL; PROT_EXEC → EPERM; unaligned offset → EINVAL; negative or overflowing
   * offset → EOVERFLOW; a length beyond the address space → ENOMEM. The mapping may extend beyond
   * EOF. MAP_POPULATE and MAP_LOCKED fault in only pages the host may fault. gmem chooses the
   * address: this is {@link #map(long, long, long, int, int) map(0, ...)}.
   */
  HostMapping map(long offset, long length, int prot, int mapFlags);

  /**
   * {@code mmap(address, length, prot, mapFlags, fd, offset)}: as {@link #map(long, long, int, int)}
   * at an address. Without MAP_FIXED or MAP_FIXED_NOREPLACE {@code address} is a hint (0: none).
   * With MAP_FIXED the mapping replaces whatever {@code [address, address+length)} held, as mmap(2)
   * does — never name memory gmem maps itself (another {@link HostMapping}); with
   * MAP_FIXED_NOREPLACE it fails with EEXIST where the range holds any mapping. Errnos as the
   * kernel's, in its order (EINVAL for an unaligned fixed address, ENOMEM beyond the address
   * space); a fixed address below {@code vm.mmap_min_addr} fails with EPERM, also for a privileged
   * process (a mapping at page 0 breaks the JVM). A failed call changes nothing, even under
   * MAP_FIXED (where the kernel may leave the range unmapped). {@link HostMapping#close()} unmaps
   * the range.
   *
   * <p>The default, for implementations that only choose addresses themselves, ignores the hint
   * and refuses a fixed address with EOPNOTSUPP.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default HostMapping map(long address, long offset, long length, int prot, int mapFlags) {
    if ((mapFlags & (MapFlags.FIXED | MapFlags.FIXED_NOREPLACE)) != 0) {
      throw new GmemException(Errno.EOPNOTSUPP, "this GuestMemFile cannot map at a fixed address");
    }
    return map(offset, length, prot, mapFlags);
  }

  /** A read-write shared mapping of the whole file. */
  default HostMapping map() {
    return map(0, size(), Prot.READ_WRITE, MapFlags.SHARED);
  }

  /**
   * {@code write(2)} population of a file created with {@link GmemFlags#WRITE} (Kalyazin's
   * guest_memfd {@code write()}, as Firecracker's secret-hiding kernels carry it): copies
   * {@code src}'s remaining bytes to file bytes {@code [offset, offset + n)}, a whole number of
   * pages, and returns how many bytes it wrote (advancing {@code src} by as many). A page the
   * host may fault and that is not yet present is filled and only then added to the filemap, so
   * a NO_DIRECT_MAP page is sealed (removed from the direct map) with its contents already in it;
   * a present page of a file without NO_DIRECT_MAP is overwritten. Errors, checked per page in
   * file order: a page that is present and sealed → EEXIST, a page that is not SHARED → EACCES
   * (write is allowed exactly when the memory is shared); before any page: an offset or length
   * that is not page aligned, or a range beyond EOF → EINVAL. A failure at the first page
   * changes nothing; a later one ends the call with what was written so far, as
   * {@code generic_perform_write} returns a short count.
   *
   * <p>Without the WRITE flag: EINVAL where no plugin gives the flag meaning (Linux 6.18's
   * guest_memfd has no write operation), ENODEV where one does (the proposal's answer for a file
   * created without it).
   *
   * <p>There is no {@code read()}: the proposal leaves it out on purpose. Reads would have to
   * reach pages that are removed from the direct map (or private) through a temporary mapping, for
   * every caller, which is the kernel-side access path direct-map removal exists to close; a VMM
   * reads shared memory through its own mapping instead.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default long write(long offset, java.nio.ByteBuffer src) {
    throw GmemException.einval("write() on a guest_memfd: Linux 6.18 has no write operation for it");
  }

  /** Shareability of the page holding {@code offset}. */
  default Shareability shareability(long offset) {
    return inode().shareability(offset >>> Folio.PAGE_SHIFT);
  }

  /**
   * The shareability of every page holding a byte of {@code [offset, offset+length)}, if it is
   * the same for all of them; empty when the range is mixed. EINVAL for an empty range or one
   * beyond EOF. Pair it with {@link #shareabilitySequence()} to act on the answer safely.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default Optional<Shareability> shareability(long offset, long length) {
    if (length <= 0 || offset < 0 || offset + length < 0 || offset + length > size()) {
      throw GmemException.einval("range [0x" + Long.toHexString(offset) + ", +0x" + Long.toHexString(length) + ") empty or beyond EOF");
    }
    List<ShareabilityRange> r = inode().shareabilityRanges(offset >>> Folio.PAGE_SHIFT, (offset + length + Folio.PAGE_SIZE - 1) >>> Folio.PAGE_SHIFT);
    return r.size() == 1 ? Optional.of(r.get(0).shareability()) : Optional.empty();
  }

  /**
   * The inode's shareability sequence: it changes whenever any page's shareability changes
   * (the {@code mmu_invalidate_seq} idea). Read it, query, act, and retry if it moved — an answer
   * read without the inode's lock may be stale by the time it is used.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default long shareabilitySequence() {
    return inode().shareabilitySequence();
  }

  /**
   * In-place conversion of bytes {@code [offset, offset+length)} to {@code target} (SHARED or PRIVATE),
   * with the semantics of upstream {@code KVM_SET_MEMORY_ATTRIBUTES2} on a guest_memfd: EINVAL for
   * an unsupported target, a zero, unaligned, overflowing or out-of-range range; nothing happens
   * when the range already has the target; ENOMEM when tracking memory cannot be had; for
   * to-private, EAGAIN when a page still has unexpected references (pins), with
   * {@link GmemException#errorOffset()} at the first offending page. All or nothing: a failed call
   * leaves shareability, folio structure and shared contents as they were.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.1")
  void setShareability(long offset, long length, Shareability target);

  /**
   * Takes long-term references on bytes {@code [offset, offset+length)} like a DMA pin: faults the pages
   * in (they must be host-faultable, else EFAULT) and holds them until the pin is closed.
   */
  Pin pin(long offset, long length);

  boolean isOpen();

  /** Closes this view. Memory stays with the inode. Idempotent. */
  @Override
  void close();
}
