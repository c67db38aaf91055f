package dev.gmem.core.backend;

import dev.gmem.api.GmemException;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Sys;

/** What user space can do to keep guest memory fds to their owner. */
public final class MemoryFds {
  private MemoryFds() {}

  /**
   * Close-on-exec (a KVM guest_memfd is created without it), and mode 000, so that a reopen of
   * {@code /proc/self/fd/N} fails with EACCES for any process without CAP_DAC_OVERRIDE — the
   * owner included. mmap, fallocate and the fd itself do not look at the mode. A guest_memfd
   * refuses fchmod (EINVAL) and cannot be reopened anyway (ENXIO).
   */
  public static void restrict(Sys sys, Fd fd) {
    sys.fcntl(fd.get(), Sys.F_SETFD, Sys.FD_CLOEXEC);
    try {
      sys.fchmod(fd.get(), 0);
    } catch (GmemException e) {
      // guest_memfd: no setattr, and no reopen either
    }
  }

  /** A memfd (shmem) of {@code size} bytes, restricted: an inode's memory where there is no guest_memfd. */
  public static Fd memfd(Sys sys, long size) {
    Fd memfd = new Fd(sys, sys.memfdCreate("gmem", Sys.MFD_CLOEXEC), "memfd");
    return restricted(sys, memfd, fd -> sys.ftruncate(fd.get(), size));
  }

  /** {@code fd} after {@code setup} and {@link #restrict}; closed if either fails. */
  public static Fd restricted(Sys sys, Fd fd, java.util.function.Consumer<Fd> setup) {
    try {
      setup.accept(fd);
      restrict(sys, fd);
      return fd;
    } catch (RuntimeException e) {
      fd.close();
      throw e;
    }
  }
}
