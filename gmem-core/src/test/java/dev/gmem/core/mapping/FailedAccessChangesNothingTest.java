package dev.gmem.core.mapping;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.MapFlags;
import dev.gmem.api.Prot;
import dev.gmem.api.Shareability;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import java.util.stream.Stream;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A host access that fails allocates nothing, and a zero-length one at the end of the mapping is
 * legal and does nothing (issue 8 item 12): the whole range is validated — bounds, prot, and that
 * the host may fault every page — before any page is faulted in.
 */
class FailedAccessChangesNothingTest {
  private static final int PAGE = 4096;

  static Stream<String> backends() {
    return Backends.names();
  }

  private static void assertFailsWith(Errno errno, Executable call) {
    assertEquals(errno, assertThrows(GmemException.class, call).errno());
  }

  @ParameterizedTest
  @MethodSource("backends")
  void zeroLengthAtTheEndOfTheMappingDoesNothing(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(16 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      try (HostMapping m = f.map(0, 8 * PAGE, Prot.READ_WRITE, MapFlags.SHARED)) {
        byte[] buf = new byte[16];
        m.read(8 * PAGE, buf, 0, 0);
        m.write(8 * PAGE, buf, 16, 0);
        m.fill(8 * PAGE, 0, (byte) 1);
        assertEquals(0, m.buffer(8 * PAGE, 0).capacity());
        m.read(3 * PAGE, buf, 0, 0);
        assertEquals(0, f.inode().allocatedPages(), "a zero-length access faulted a page in");
        // Past the end even a zero-length access is outside the mapping.
        assertFailsWith(Errno.EFAULT, () -> m.read(8 * PAGE + 1, buf, 0, 0));
        assertFailsWith(Errno.EFAULT, () -> m.fill(8 * PAGE + 1, 0, (byte) 1));
        assertEquals(0, f.inode().allocatedPages());
      }
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void anAccessThatReachesAPrivatePageAllocatesNothing(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile f = vm.createGuestMemFile(16 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      f.setShareability(11L * PAGE, PAGE, Shareability.PRIVATE);
      try (HostMapping m = f.map()) {
        byte[] buf = new byte[4 * PAGE];
        // Pages 8-10 were never touched; page 11 is private.
        assertFailsWith(Errno.EACCES, () -> m.read(8 * PAGE, buf, 0, 4 * PAGE));
        assertFailsWith(Errno.EACCES, () -> m.write(8 * PAGE, buf, 0, 4 * PAGE));
        assertFailsWith(Errno.EACCES, () -> m.fill(8 * PAGE, 4 * PAGE, (byte) 7));
        assertFailsWith(Errno.EACCES, () -> m.buffer(8 * PAGE, 4 * PAGE));
        assertFailsWith(Errno.EACCES, () -> m.getLong(11L * PAGE - 4));
        assertEquals(0, f.inode().allocatedPages(), "a failed access faulted pages in");
        m.fill(8 * PAGE, 3 * PAGE, (byte) 7);
        assertEquals(3, f.inode().allocatedPages());
      }
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void anAccessThatReachesBeyondEofAllocatesNothing(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(4 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      // mmap may extend beyond EOF; touching the pages there is SIGBUS in the kernel.
      try (HostMapping m = f.map(0, 6 * PAGE, Prot.READ_WRITE, MapFlags.SHARED)) {
        byte[] buf = new byte[2 * PAGE];
        assertFailsWith(Errno.EFAULT, () -> m.read(3 * PAGE, buf, 0, 2 * PAGE));
        assertFailsWith(Errno.EFAULT, () -> m.fill(3 * PAGE, 2 * PAGE, (byte) 1));
        assertEquals(0, f.inode().allocatedPages(), "a failed access faulted pages in");
      }
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aReadOnlyMappingRefusesWritesWithoutFaulting(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(4 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      try (HostMapping m = f.map(0, 4 * PAGE, Prot.READ, MapFlags.SHARED)) {
        assertFailsWith(Errno.EFAULT, () -> m.putLong(0, 1));
        assertFailsWith(Errno.EFAULT, () -> m.fill(0, 2 * PAGE, (byte) 1));
        assertEquals(0, f.inode().allocatedPages());
        assertEquals(0, m.getLong(PAGE));
        assertEquals(1, f.inode().allocatedPages());
      }
    }
  }
}
