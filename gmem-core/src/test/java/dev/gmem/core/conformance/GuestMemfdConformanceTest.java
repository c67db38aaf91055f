package dev.gmem.core.conformance;

import static dev.gmem.core.conformance.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import dev.gmem.api.Errno;
import dev.gmem.api.Fallocate;
import dev.gmem.api.FileStat;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.MapFlags;
import dev.gmem.api.Prot;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import java.util.function.Consumer;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every non-guest check of the kernel's {@code guest_memfd_test.c} (v6.18), written against
 * gmem's API and run on each backend. Each case uses a fresh 4-page file, like {@code gmem_test()}.
 */
class GuestMemfdConformanceTest {
  static final long PAGE = 4096;
  static final long SIZE = 4 * PAGE;

  static java.util.stream.Stream<String> backends() {
    return Backends.names();
  }

  private static void withFile(String backend, long flags, Consumer<GuestMemFile> test) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      try (GuestMemFile f = vm.createGuestMemFile(SIZE, flags)) {
        test.accept(f);
      }
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void mmapCowIsRefused(String backend) {
    for (long flags : new long[] {GmemFlags.MMAP, GmemFlags.MMAP | GmemFlags.INIT_SHARED}) {
      withFile(backend, flags, f -> expect(Errno.EINVAL, () -> f.map(0, SIZE, Prot.READ_WRITE, MapFlags.PRIVATE)));
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void mmapSupported(String backend) {
    withFile(backend, GmemFlags.MMAP | GmemFlags.INIT_SHARED, f -> {
      try (HostMapping m = f.map(0, SIZE, Prot.READ_WRITE, MapFlags.SHARED)) {
        m.fill(0, SIZE, (byte) 0xaa);
        byte[] all = new byte[(int) SIZE];
        m.read(0, all, 0, all.length);
        for (byte b : all) {
          assertEquals((byte) 0xaa, b);
        }
        f.fallocate(Fallocate.KEEP_SIZE | Fallocate.PUNCH_HOLE, 0, PAGE);
        for (long i = 0; i < PAGE; i += 8) {
          assertEquals(0, m.getLong(i), "punched page reads zero");
        }
        for (long i = PAGE; i < SIZE; i++) {
          assertEquals((byte) 0xaa, m.getByte(i));
        }
        m.fill(0, PAGE, (byte) 0xaa);
        assertEquals((byte) 0xaa, m.getByte(PAGE - 1));
      }
    });
  }

  private static void faultSigbus(GuestMemFile f, long accessible, long mapSize) {
    try (HostMapping m = f.map(0, mapSize, Prot.READ_WRITE, MapFlags.SHARED)) {
      Errno expected = accessible < f.size() ? Errno.EACCES : Errno.EFAULT;
      expect(expected, () -> m.fill(0, mapSize, (byte) 0xaa));
      if (accessible > 0) {
        m.fill(0, accessible, (byte) 0xaa);
      }
      expect(expected, () -> m.getByte(accessible));
      for (long i = 0; i < accessible; i++) {
        assertEquals((byte) 0xaa, m.getByte(i));
      }
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void faultOverflowBeyondEof(String backend) {
    withFile(backend, GmemFlags.MMAP | GmemFlags.INIT_SHARED, f -> faultSigbus(f, SIZE, 4 * SIZE));
  }

  @ParameterizedTest
  @MethodSource("backends")
  void faultPrivateWithoutInitShared(String backend) {
    withFile(backend, GmemFlags.MMAP, f -> faultSigbus(f, 0, SIZE));
  }

  @ParameterizedTest
  @MethodSource("backends")
  void mmapNotSupportedWithoutMmapFlag(String backend) {
    for (long flags : new long[] {0, GmemFlags.INIT_SHARED}) {
      withFile(backend, flags, f -> {
        expect(Errno.ENODEV, () -> f.map(0, PAGE, Prot.READ_WRITE, MapFlags.SHARED));
        expect(Errno.ENODEV, () -> f.map(0, SIZE, Prot.READ_WRITE, MapFlags.SHARED));
      });
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void fileSize(String backend) {
    for (long flags : new long[] {0, GmemFlags.MMAP, GmemFlags.MMAP | GmemFlags.INIT_SHARED}) {
      withFile(backend, flags, f -> {
        FileStat st = f.stat();
        assertEquals(SIZE, st.size());
        assertEquals(PAGE, st.blksize());
        assertEquals(0100600, st.mode());
      });
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void fallocate(String backend) {
    for (long flags : new long[] {0, GmemFlags.MMAP, GmemFlags.MMAP | GmemFlags.INIT_SHARED}) {
      withFile(backend, flags, f -> {
        int keep = Fallocate.KEEP_SIZE;
        int punch = Fallocate.KEEP_SIZE | Fallocate.PUNCH_HOLE;
        f.fallocate(keep, 0, SIZE);
        assertEquals(4, f.inode().allocatedPages());
        expect(Errno.EINVAL, () -> f.fallocate(punch, PAGE - 1, PAGE));
        expect(Errno.EINVAL, () -> f.fallocate(keep, SIZE, PAGE));
        expect(Errno.EINVAL, () -> f.fallocate(keep, SIZE + PAGE, PAGE));
        f.fallocate(punch, SIZE, PAGE);
        f.fallocate(punch, SIZE + PAGE, PAGE);
        expect(Errno.EINVAL, () -> f.fallocate(punch, PAGE, PAGE - 1));
        f.fallocate(punch, PAGE, PAGE);
        assertEquals(3, f.inode().allocatedPages());
        f.fallocate(keep, PAGE, PAGE);
        assertEquals(4, f.inode().allocatedPages());
      });
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void invalidPunchHole(String backend) {
    long[][] cases = {{0, 1}, {0, PAGE - 1}, {0, PAGE + 1}, {1, 1}, {1, PAGE - 1}, {1, PAGE}, {1, PAGE + 1}, {PAGE, 1}, {PAGE, PAGE - 1}, {PAGE, PAGE + 1}};
    withFile(backend, 0, f -> {
      for (long[] c : cases) {
        expect(Errno.EINVAL, () -> f.punchHole(c[0], c[1]));
      }
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void createInvalidSizes(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      for (long flags : new long[] {0, GmemFlags.MMAP, GmemFlags.MMAP | GmemFlags.INIT_SHARED}) {
        for (long size = 1; size < PAGE; size++) {
          long s = size;
          expect(Errno.EINVAL, () -> vm.createGuestMemFile(s, flags));
        }
        expect(Errno.EINVAL, () -> vm.createGuestMemFile(0, flags));
        expect(Errno.EINVAL, () -> vm.createGuestMemFile(-PAGE, flags));
        expect(Errno.EINVAL, () -> vm.createGuestMemFile(PAGE + 1, flags));
      }
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void createMultiple(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      try (GuestMemFile a = vm.createGuestMemFile(PAGE, 0); GuestMemFile b = vm.createGuestMemFile(2 * PAGE, 0)) {
        assertEquals(PAGE, a.stat().size());
        assertEquals(2 * PAGE, b.stat().size());
        assertNotEquals(a.stat().ino(), b.stat().ino());
      }
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void everyFlagBitIsAcceptedExactlyWhenSupported(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      long supported = vm.supportedGuestMemFlags();
      assertEquals(GmemFlags.MMAP | GmemFlags.INIT_SHARED, supported & (GmemFlags.MMAP | GmemFlags.INIT_SHARED));
      for (int bit = 0; bit < 64; bit++) {
        long flag = 1L << bit;
        if ((supported & flag) != 0) {
          vm.createGuestMemFile(PAGE, flag).close();
        } else {
          expect(Errno.EINVAL, () -> vm.createGuestMemFile(PAGE, flag));
        }
      }
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void useAfterCloseIsEbadf(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(SIZE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      HostMapping m = f.map();
      m.putLong(0, 0x1234);
      f.close();
      expect(Errno.EBADF, () -> f.punchHole(0, PAGE));
      expect(Errno.EBADF, () -> f.map());
      expect(Errno.EBADF, f::stat);
      // The mapping keeps the inode alive, as in the kernel.
      assertEquals(0x1234, m.getLong(0));
      m.close();
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void hostMappingRulesMirrorTheKernel(String backend) {
    withFile(backend, GmemFlags.MMAP | GmemFlags.INIT_SHARED, f -> {
      expect(Errno.EPERM, () -> f.map(0, PAGE, Prot.READ | Prot.EXEC, MapFlags.SHARED));
      expect(Errno.EINVAL, () -> f.map(1, PAGE, Prot.READ, MapFlags.SHARED));
      expect(Errno.EINVAL, () -> f.map(0, PAGE, Prot.READ, MapFlags.SHARED | MapFlags.HUGETLB));
      try (HostMapping m = f.map(0, SIZE, Prot.READ_WRITE, MapFlags.SHARED_VALIDATE | MapFlags.POPULATE)) {
        assertEquals(4, f.inode().allocatedPages(), "MAP_POPULATE faults every shared page in");
        byte[] ones = {1, 1, 1};
        m.write(SIZE - 3, ones, 0, 3);
        byte[] back = new byte[3];
        m.read(SIZE - 3, back, 0, 3);
        assertArrayEquals(ones, back);
      }
      try (HostMapping ro = f.map(PAGE, PAGE, Prot.READ, MapFlags.SHARED)) {
        expect(Errno.EFAULT, () -> ro.putByte(0, (byte) 1));
        assertEquals(0, ro.getByte(0));
      }
    });
  }
}
