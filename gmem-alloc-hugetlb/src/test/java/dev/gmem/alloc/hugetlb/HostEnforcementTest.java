package dev.gmem.alloc.hugetlb;

import dev.gmem.core.conformance.KernelCopy;
import static dev.gmem.alloc.hugetlb.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.HugePagePool;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.MapFlags;
import dev.gmem.api.Prot;
import dev.gmem.api.Shareability;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import java.util.stream.Stream;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Host privacy on hugetlb memory, where a mapping can only change in whole 2 MiB pages: a private
 * 4 KiB page is unreadable at the OS level, its shared neighbours stay readable through gmem's
 * accessors, raw access to the mixed huge page faults, and {@code buffer()} refuses it.
 */
class HostEnforcementTest {
  @RegisterExtension static final HugePool POOL = HugePool.of(4, 0);

  static final long PAGE = 4096;
  static final long HUGE = HugePool.MIB2;
  static final long FLAGS = GmemFlags.MMAP | GmemFlags.INIT_SHARED | GmemFlags.hugePageSize(21);

  static Stream<String> backends() {
    return Backends.names();
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aPrivateSubpageIsUnreadableAndItsSharedNeighboursStayReachableThroughGmem(String backend) {
    try (GmemRuntime rt = Backends.open(backend);
        GuestMemFile f = rt.createVm(VmType.SW_PROTECTED).createGuestMemFile(2 * HUGE, FLAGS);
        HostMapping m = f.map()) {
      for (long p = 0; p < 2 * HUGE / PAGE; p += 64) {
        m.putLong(p * PAGE, p);
      }
      m.putLong(5 * PAGE, 5);
      m.putLong(6 * PAGE, 6);
      assertNull(KernelCopy.read(m.address() + 6 * PAGE, 8), "all shared: raw access works");

      f.setShareability(5 * PAGE, PAGE, Shareability.PRIVATE);
      expect(Errno.EACCES, () -> m.getLong(5 * PAGE));
      assertEquals(Errno.EFAULT, KernelCopy.read(m.address() + 5 * PAGE, 8), "the private page really faults");
      assertEquals(6, m.getLong(6 * PAGE), "a shared neighbour through the accessors");
      m.putLong(6 * PAGE + 8, 66);
      byte[] bytes = new byte[16];
      m.read(6 * PAGE, bytes, 0, 16);
      assertEquals(66, bytes[8]);
      assertEquals(Errno.EFAULT, KernelCopy.read(m.address() + 6 * PAGE, 8), "raw access to the mixed huge page faults whole");
      GmemException refused = expect(Errno.EFAULT, () -> m.buffer(6 * PAGE, 8));
      assertTrue(refused.getMessage().contains("huge page"), refused.getMessage());
      expect(Errno.EACCES, () -> m.read(4 * PAGE, new byte[2 * (int) PAGE], 0, 2 * (int) PAGE));

      assertNull(KernelCopy.read(m.address() + HUGE + 64 * PAGE, 8), "the other huge page is untouched");
      assertEquals(HUGE / PAGE + 64, m.buffer(HUGE + 64 * PAGE, 8).getLong(0));

      try (HostMapping second = f.map()) {
        assertEquals(Errno.EFAULT, KernelCopy.read(second.address() + 6 * PAGE, 8), "a new mapping covers the mixed page too");
        assertEquals(66, second.getLong(6 * PAGE + 8));
      }

      f.setShareability(5 * PAGE, PAGE, Shareability.SHARED);
      assertNull(KernelCopy.read(m.address() + 5 * PAGE, 8), "shared whole again: mapped again at once");
      assertEquals(5, m.buffer(5 * PAGE, 8).getLong(0));
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void mappingsFollowHugetlbfsRulesAndReserveNothingBeyondEof(String backend) {
    try (GmemRuntime rt = Backends.open(backend);
        GuestMemFile f = rt.createVm(VmType.SW_PROTECTED).createGuestMemFile(2 * HUGE, FLAGS)) {
      expect(Errno.EINVAL, () -> f.map(PAGE, PAGE, Prot.READ_WRITE, MapFlags.SHARED));
      HugePagePool before = HugePool.counters(HUGE);
      try (HostMapping m = f.map(HUGE, 3 * HUGE + PAGE, Prot.READ_WRITE, MapFlags.SHARED)) {
        assertEquals(before, HugePool.counters(HUGE), "no pool page reserved for the part beyond EOF");
        m.putLong(8, 1);
        assertEquals(1, m.getLong(8));
        expect(Errno.EFAULT, () -> m.getLong(HUGE));
        assertEquals(Errno.EFAULT, KernelCopy.read(m.address() + HUGE, 8), "beyond EOF faults as on hugetlbfs");
        assertEquals(Errno.EFAULT, KernelCopy.read(m.address() + 3 * HUGE, 8));
      }
    }
  }
}
