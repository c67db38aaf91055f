package dev.gmem.core.alloc;

import dev.gmem.api.spi.AllocatorProvider;
import dev.gmem.api.spi.FolioAllocator;
import dev.gmem.api.spi.HostMemory;

/** Registers {@link PageAllocator} like any plugin, so {@code gmem info} lists it with its jar. */
public final class PageAllocatorProvider implements AllocatorProvider {
  public static final String ID = "page";

  @Override
  public String id() {
    return ID;
  }

  @Override
  public FolioAllocator create(HostMemory host) {
    return new PageAllocator();
  }
}
