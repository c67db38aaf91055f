package dev.gmem.core.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.core.conformance.Backends;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Kvm;
import dev.gmem.core.sys.Sys;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * The behaviour probe for {@code KVM_LINK_GUEST_MEMFD} against the real kernel: where the kernel
 * answers ENOTTY (6.18) there is no link and gmem links itself; where it returns an fd, that fd
 * must be a new file on the source's inode.
 */
class GuestMemfdLinksTest {

  @Test
  void aLinkIsANewFileOnTheSourcesInodeOrNone() {
    assumeTrue(Files.exists(Path.of("/dev/kvm")), "host has no /dev/kvm: the link probe needs a real KVM");
    Sys sys = Sys.load();
    Kvm kvm = new Kvm(sys);
    // The source is what the kvm backend's inode has: a guest_memfd, or a memfd where the kernel has none.
    boolean kernelGuestMemfd = Backends.noKernelGuestMemfd().isEmpty();
    try (Fd device = kvm.openDevice();
        Fd a = kvm.createVm(device, 0);
        Fd b = kvm.createVm(device, 0);
        Fd source = kernelGuestMemfd ? kvm.createGuestMemfd(a, 4096, GmemFlags.MMAP | GmemFlags.INIT_SHARED) : MemoryFds.memfd(sys, 4096)) {
      Errno raw = rawAnswer(kvm, b, source);
      GuestMemfdLinks links = new GuestMemfdLinks(kvm);
      Fd linked = links.link(b, source);
      if (raw == Errno.ENOTTY) {
        assertNull(linked, "a kernel without the ioctl: gmem links itself");
        assertNull(links.link(b, source), "and keeps saying so");
      } else if (linked != null) {
        try (linked) {
          assertNotEquals(source.get(), linked.get());
          assertEquals(sys.fstat(source.get()).ino(), sys.fstat(linked.get()).ino(), "a kernel link shares the inode");
        }
      }
    }
  }

  /** The kernel's own answer to the RFC's ioctl: null for an fd (closed again), else the errno. */
  private static Errno rawAnswer(Kvm kvm, Fd vm, Fd source) {
    try {
      kvm.sys().closeQuietly(kvm.linkGuestMemfd(vm, source));
      return null;
    } catch (GmemException e) {
      return e.errno();
    }
  }
}
