package dev.gmem.core.inode;

import dev.gmem.api.Prot;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Mapping;
import dev.gmem.core.sys.Sys;

/**
 * The whole-file mapping that stands in for the guest's stage-2 view: memslots pass it as
 * {@code userspace_addr}, the software vCPU and the host accessors copy through it, conversion
 * stores content effects through it. Never handed to VMM code. Mapped on first use, because most
 * inodes of a test or a short-lived VM are never accessed.
 */
final class GuestView {
  private final Sys sys;
  private final Fd memory;
  private final long size;
  private volatile Mapping mapping;

  GuestView(Sys sys, Fd memory, long size) {
    this.sys = sys;
    this.memory = memory;
    this.size = size;
  }

  /** The view's address; maps it on first use (may fail with ENOMEM). */
  long address() {
    Mapping m = mapping;
    if (m == null) {
      synchronized (this) {
        m = mapping;
        if (m == null) {
          m = new Mapping(sys, sys.mmap(0, size, Prot.READ_WRITE, Prot.MAP_SHARED, memory.get(), 0), size);
          mapping = m;
        }
      }
    }
    return m.address();
  }

  /** Unmaps at eviction (invalidate lock held exclusive). */
  void close() {
    Mapping m = mapping;
    mapping = null;
    if (m != null) {
      m.close();
    }
  }
}
