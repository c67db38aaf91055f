package dev.gmem.core.mapping;

import static dev.gmem.core.conformance.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.MapFlags;
import dev.gmem.api.Prot;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The accessors' argument checks, which the hot path folds into a bounds test and its plane's
 * lookup (a mapping without the access's prot, or closed, has the dead plane): bounds, protection
 * and a closed mapping each give EFAULT, zero-length accesses of an
 * open mapping succeed, and of a closed one fail.
 */
class AccessorChecksTest {
  static final long PAGE = 4096;

  static Stream<String> backends() {
    return Backends.names();
  }

  @ParameterizedTest
  @MethodSource("backends")
  void everyBadAccessIsEfaultAndAClosedMappingRefusesEvenEmptyOnes(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(2 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      HostMapping m = f.map();
      m.putLong(PAGE - 8, 7);
      assertEquals(7, m.getLong(PAGE - 8));
      expect(Errno.EFAULT, () -> m.getLong(2 * PAGE - 7));
      expect(Errno.EFAULT, () -> m.getLong(-1));
      m.read(2 * PAGE, new byte[0], 0, 0); // empty, at the end: allowed
      try (HostMapping ro = f.map(0, 2 * PAGE, Prot.READ, MapFlags.SHARED)) {
        assertEquals(7, ro.getLong(PAGE - 8));
        expect(Errno.EFAULT, () -> ro.putLong(0, 1));
      }
      // A faulted page, mapped again without the access's prot: the mapping's plane for that kind
      // of access is the dead one, so the refusal comes from the slow path's check.
      try (HostMapping none = f.map(0, 2 * PAGE, Prot.NONE, MapFlags.SHARED)) {
        expect(Errno.EFAULT, () -> none.getLong(PAGE - 8));
        expect(Errno.EFAULT, () -> none.putLong(PAGE - 8, 1));
      }
      m.close();
      expect(Errno.EFAULT, () -> m.getLong(PAGE - 8));
      expect(Errno.EFAULT, () -> m.putLong(0, 1));
      expect(Errno.EFAULT, () -> m.read(0, new byte[0], 0, 0));
    }
  }
}
