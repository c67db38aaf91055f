package dev.gmem.core.inode;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The inodes one runtime created that are not evicted yet. Closing the runtime releases every
 * reference that can still reach them (mappings, pins, files) — whatever the caller closed first —
 * so that each is evicted and its fd and mappings go back.
 */
public final class LiveInodes {
  private final Set<GuestMemInodeImpl> inodes = ConcurrentHashMap.newKeySet();
  /** Size after the last sweep of evicted inodes: the next sweep waits until the set doubled. */
  private int swept;
  private final TemporaryMappings temporaryMappings = new TemporaryMappings();

  /** The runtime's temporary mappings, which its inodes share. */
  public TemporaryMappings temporaryMappings() {
    return temporaryMappings;
  }

  public void add(GuestMemInodeImpl inode) {
    inode.useTemporaryMappings(temporaryMappings);
    inodes.add(inode);
    synchronized (this) {
      if (inodes.size() > 2 * swept + 16) {
        inodes.removeIf(GuestMemInodeImpl::isEvicted);
        swept = inodes.size();
      }
    }
  }

  /** The live inode numbered {@code ino}, or null (evicted, or never of this runtime). */
  public GuestMemInodeImpl find(long ino) {
    for (GuestMemInodeImpl inode : inodes) {
      if (inode.ino() == ino && !inode.isEvicted()) {
        return inode;
      }
    }
    return null;
  }

  /** Drops every reference that keeps a live inode alive, except memslots (their VMs drop those). */
  public void releaseAll() {
    for (GuestMemInodeImpl inode : inodes) {
      inode.releaseAll();
    }
    inodes.clear();
  }
}
