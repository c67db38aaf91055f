package dev.gmem.tck.internal;

import dev.gmem.api.HostInfo;
import dev.gmem.api.spi.AllocatorProvider;
import dev.gmem.api.spi.FolioAllocator;
import dev.gmem.api.spi.HostMemory;
import dev.gmem.api.spi.Support;

/**
 * The allocator a kit runtime selects by default: the vendor's allocator under test, recorded, or
 * (arch runtimes) the kit's own bookkeeping allocator, recorded.
 */
public final class KitAllocatorProvider implements AllocatorProvider {
  private final Session session = Session.building();

  @Override
  public String id() {
    return Session.ID;
  }

  @Override
  public long creationFlags() {
    if (session == null) {
      return 0;
    }
    return session.allocator != null ? session.allocator.creationFlags() : KitPages.BLOCKS;
  }

  @Override
  public boolean claimsFlags(long flags) {
    if (session == null) {
      return false;
    }
    return session.allocator != null ? session.allocator.claimsFlags(flags) : (flags & KitPages.BLOCKS) != 0;
  }

  @Override
  public Support probe(HostInfo host) {
    if (session == null) {
      return Support.no("gmem-tck's allocator serves only the runtimes the kit builds");
    }
    return session.allocator != null ? session.allocator.probe(host) : Support.yes("bookkeeping over the backend's file");
  }

  @Override
  public FolioAllocator create(HostMemory host) {
    FolioAllocator vendor = session.allocator != null ? session.allocator.create(host) : new KitPages();
    return new RecordingAllocator(vendor, session.allocLog);
  }
}
