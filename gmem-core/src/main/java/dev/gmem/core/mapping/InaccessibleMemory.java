package dev.gmem.core.mapping;

import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Sys;

/**
 * An empty memfd: every byte of a mapping of it lies beyond EOF, so any access raises SIGBUS.
 * Mapped with MAP_FIXED over pages the host may not fault. One per runtime.
 */
public final class InaccessibleMemory implements AutoCloseable {
  private final Fd fd;

  public InaccessibleMemory(Sys sys) {
    this.fd = new Fd(sys, sys.memfdCreate("gmem-inaccessible", Sys.MFD_CLOEXEC), "inaccessible-memfd");
  }

  public int fd() {
    return fd.get();
  }

  @Override
  public void close() {
    fd.close();
  }
}
