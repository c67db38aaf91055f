package dev.gmem.core.convert;

import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.FilemapListener;
import dev.gmem.api.spi.FolioAllocator;
import dev.gmem.core.filemap.Filemap;
import dev.gmem.core.filemap.LruBatch;
import dev.gmem.core.shareability.ShareabilityStore;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Sys;
import java.util.List;
import java.util.concurrent.locks.ReadWriteLock;

/**
 * What {@link ConversionEngine} needs of an inode, and nothing more: its state (store, filemap,
 * transient references), its collaborators (arch, allocator) and its host and guest mappings.
 * The inode implements it; the engine never sees the inode's fault, punch or pin machinery.
 * Sizes are in pages unless named in bytes.
 */
public interface ConvertibleInode {

  /** Inode number, for the arch's page identities. */
  long ino();

  /** Creation flags, as filemap listeners are told them. */
  long flags();

  /** Filemap listeners, told of folio splits and merges. */
  List<FilemapListener> listeners();

  /**
   * Pages in {@code [start, end)} the arch leaked during this conversion's invalidate leave the
   * filemap without going back to the allocator, and every host mapping covers them.
   */
  void retireLeaked(long start, long end);

  /** Size in bytes. */
  long size();

  /** Size in pages. */
  long nrPages();

  /** Order of the folios the allocator hands out. */
  int folioOrder();

  ArchHooks arch();

  FolioAllocator.Inode allocator();

  /** Taken exclusive for the whole conversion. */
  ReadWriteLock invalidateLock();

  ShareabilityStore shareabilityStore();

  Filemap filemap();

  LruBatch lruBatch();

  /** Every host mapping of the inode, in every file. */
  List<? extends InodeMapping> mappings();

  /**
   * Whether the kernel converts this memory in place ({@code KVM_SET_MEMORY_ATTRIBUTES2}): it then
   * refuses host faults on private pages and applies the firmware's content effects itself.
   */
  default boolean kernelConverts() {
    return false;
  }

  /**
   * Converts pages {@code [start, end)} in the kernel too, where it {@link #kernelConverts()}; may
   * fail as the kernel does (EAGAIN at an offset, ENOMEM), changing nothing.
   */
  default void convertInKernel(long start, long end, dev.gmem.api.Shareability target) {}

  /** A mapping of pages {@code [first, end)} for content effects and detaching; may fail with ENOMEM. */
  ViewWindow viewWindow(long first, long end);

  /** A mapping of part of the memory, held until closed. */
  interface ViewWindow extends AutoCloseable {
    /** The address of file byte {@code offset}, which lies in the window. */
    long address(long offset);

    @Override
    void close();
  }

  /**
   * Hook for gmem's lock-free accessors (see {@code GuestMemInodeImpl#invalidateBegin}): called
   * under the exclusive invalidate lock before pages {@code [start, end)} change shareability or
   * contents; returns when no lock-free access to them is in flight. Cannot fail.
   */
  void invalidateBegin(long start, long end);

  /** The memory's fd (guest_memfd, memfd or the allocator's hugetlbfs file): a detach punches it. */
  Fd memory();

  Sys sys();

  /** Order of the memory's own page size (0, or the huge page order on hugetlbfs): its punch and mapping granule. */
  int hostBlockOrder();

  /** The pages raw host users may have reached: what a to-private detaches. */
  HostExposure exposure();

  /** Whether the memory is {@code memfd_secret(2)} memory, which GUP cannot take references on. */
  default boolean secretMemory() {
    return false;
  }
}
