package dev.gmem.core.host;

import dev.gmem.api.GmemException;
import dev.gmem.api.HostInfo;
import dev.gmem.api.HugePagePool;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.api.spi.HostMemory;
import dev.gmem.api.spi.TemporaryMapping;
import dev.gmem.core.inode.GuestMemInodeImpl;
import dev.gmem.core.inode.LiveInodes;
import java.util.List;

/**
 * The host-memory services of one runtime: the host's, plus what needs the runtime's inodes
 * (temporary mappings of their pages).
 */
public final class RuntimeHostMemory implements HostMemory {
  private final HostMemory host;
  private final LiveInodes inodes;

  public RuntimeHostMemory(HostMemory host, LiveInodes inodes) {
    this.host = host;
    this.inodes = inodes;
  }

  @Override
  public HostInfo host() {
    return host.host();
  }

  @Override
  public MemoryFile createMemfd(String name, int flags, long size) {
    return host.createMemfd(name, flags, size);
  }

  @Override
  public List<HugePagePool> hugePagePools() {
    return host.hugePagePools();
  }

  @Override
  public MemoryFile createSecretMemory(long size) {
    return host.createSecretMemory(size);
  }

  @Override
  public TemporaryMapping mapTemporarily(GmemPage first, long nrPages) {
    GuestMemInodeImpl inode = inodes.find(first.ino());
    if (inode == null) {
      throw GmemException.einval("no live inode " + first.ino() + " in this runtime");
    }
    return inodes.temporaryMappings().open(inode, first.index(), nrPages);
  }

  @Override
  public TemporaryMapping.Stats temporaryMappingStats() {
    return inodes.temporaryMappings().stats();
  }
}
