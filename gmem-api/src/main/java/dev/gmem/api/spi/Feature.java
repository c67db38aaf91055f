package dev.gmem.api.spi;

import dev.gmem.api.Api;
import dev.gmem.api.GmemException;

/**
 * An active feature: the hooks it installs. Defaults install nothing. The VMM reaches the
 * instance itself through {@link dev.gmem.api.GmemRuntime#feature(Class)}, so a feature offers
 * its own API (statistics, bitmaps, page sources) by implementing an interface of its own.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.1")
public interface Feature {

  default FilemapListener filemapListener() {
    return null;
  }

  default FaultInterceptor faultInterceptor() {
    return null;
  }

  /**
   * Memory for a new inode of {@code size} bytes created with {@code flags}, or null to leave it
   * to the allocator and the backend (e.g. {@code memfd_secret(2)} memory for NO_DIRECT_MAP
   * inodes). Asked at every file creation, after the flags and size were validated; the first
   * feature that answers wins, and an answer for an inode whose allocator supplies memory of its
   * own fails the creation with EINVAL (since 0.2; 0.1 did not ask then). Throw to refuse the
   * creation (EINVAL for a flag combination the feature cannot serve). gmem takes
   * ownership and closes the file with the inode; such memory is no guest_memfd to the kernel and
   * is bound to memslots through {@code userspace_addr}.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default HostMemory.MemoryFile memory(long size, long flags) throws GmemException {
    return null;
  }

  /**
   * Whether the running kernel implements this feature's memslot flags itself, for memslot
   * {@code slot} of {@code vm} of {@code size} bytes about to get {@code flags} (at creation and at
   * every flags-only update): null (the default) where gmem implements them — a slot of 4 KiB
   * memory then gets gmem's stage-2 view and the kernel never sees the bits — else what to pass to
   * the kernel, which then produces the exits itself (no stage-2 view for the slot). Probe the
   * kernel by behaviour, never by a capability number. Throw to refuse the slot.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default KernelMemslot kernelMemslot(dev.gmem.api.Vm vm, int slot, int flags, long size) throws GmemException {
    return null;
  }

  /**
   * {@link #memory(long, long)} for the inode that will be numbered {@code ino} (the number its
   * {@link FilemapListener} calls carry), so a feature can keep per-inode state over the memory
   * it supplies. Core calls this form; the default forgets the number.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default HostMemory.MemoryFile memory(long ino, long size, long flags) throws GmemException {
    return memory(size, flags);
  }
}
