package dev.gmem.core.backend;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Kvm;

/**
 * {@code KVM_LINK_GUEST_MEMFD} passed through where the kernel has it, recognised by behaviour: the
 * RFC's number is unassigned in 6.18 (ENOTTY) and may mean something else on a kernel that never
 * took the RFC, so an answer counts as a link only if it is a new fd on the source's inode. ENOTTY,
 * or an fd that is no link, is remembered and later links skip the call; any other failure only
 * makes this one link fall back, since gmem's own link is always correct on this backend.
 */
final class GuestMemfdLinks {
  private final Kvm kvm;
  private volatile boolean absent;

  GuestMemfdLinks(Kvm kvm) {
    this.kvm = kvm;
  }

  /** A new real guest_memfd of {@code vm} on {@code source}'s inode, or null. */
  Fd link(Fd vm, Fd source) {
    if (absent) {
      return null;
    }
    int fd;
    try {
      fd = kvm.linkGuestMemfd(vm, source);
    } catch (GmemException e) {
      if (e.errno() == Errno.ENOTTY) {
        absent = true;
      }
      return null;
    }
    Fd linked = new Fd(kvm.sys(), fd, "guest_memfd (linked)");
    if (fd != source.get() && kvm.sys().fstat(fd).ino() == kvm.sys().fstat(source.get()).ino()) {
      return linked;
    }
    linked.close();
    absent = true;
    return null;
  }
}
