package dev.gmem.api.spi;

import dev.gmem.api.Api;

/**
 * Provides a {@link FolioAllocator}. An inode uses the allocator whose
 * {@link #claimsFlags(long)} accepts its creation flags (e.g. a huge-page-size field), else the one
 * named by {@code gmem.allocator}, else core's 4 KiB allocator.
 *
 * <p>EXPERIMENTAL, as {@link FolioAllocator}.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.1")
public interface AllocatorProvider extends GmemProvider {

  /** Creation-flag bits this allocator gives meaning to; they become valid creation flags. */
  default long creationFlags() {
    return 0;
  }

  /** Whether files created with {@code flags} must use this allocator. */
  default boolean claimsFlags(long flags) {
    return (flags & creationFlags()) != 0;
  }

  FolioAllocator create(HostMemory host);
}
