package dev.gmem.core.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.VmType;
import dev.gmem.core.sys.Sys;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** Private pages are inaccessible to the host for real, not just in gmem's bookkeeping. */
class PrivatePageTest {
  private static final Sys SYS = Sys.load();

  static java.util.stream.Stream<String> backends() {
    return Backends.names();
  }

  @ParameterizedTest
  @MethodSource("backends")
  void privatePageIsUnreadableAtTheOsLevel(String backend) {
    try (GmemRuntime rt = Backends.open(backend);
        GuestMemFile priv = rt.createVm(VmType.DEFAULT).createGuestMemFile(2 * 4096, GmemFlags.MMAP);
        HostMapping m = priv.map()) {
      GmemException api = assertThrows(GmemException.class, () -> m.getLong(4096));
      assertEquals(Errno.EACCES, api.errno());
      assertEquals(Errno.EFAULT, KernelCopy.read(m.address() + 4096, 1), "kernel copy from a private page must fault");
      assertEquals(0, priv.inode().allocatedPages(), "a refused fault allocates nothing");
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void sharedPageIsReadableAtTheOsLevel(String backend) {
    try (GmemRuntime rt = Backends.open(backend);
        GuestMemFile shared = rt.createVm(VmType.DEFAULT).createGuestMemFile(4096, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
        HostMapping m = shared.map()) {
      m.putLong(0, 7);
      assertEquals(null, KernelCopy.read(m.address(), 1));
    }
  }
}
