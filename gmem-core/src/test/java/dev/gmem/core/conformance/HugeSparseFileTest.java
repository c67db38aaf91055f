package dev.gmem.core.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The largest file the kernel accepts (2^63 − 4096 bytes: a positive, page-aligned loff_t) is
 * usable where it is used: a host mapping of its last page and a memslot over its last GiB work,
 * as with the kernel, which maps windows and never the whole file.
 */
class HugeSparseFileTest {
  static final long PAGE = 4096;
  static final long SIZE = Long.MAX_VALUE - (PAGE - 1);
  static final long GIB = 1L << 30;
  static final long GPA = 1L << 32;

  static Stream<String> backends() {
    return Backends.names();
  }

  @ParameterizedTest
  @MethodSource("backends")
  void lastPageAndLastGibOfA2To63File(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      try (GuestMemFile f = vm.createGuestMemFile(SIZE, GmemFlags.MMAP | GmemFlags.INIT_SHARED)) {
        assertEquals(SIZE, f.size());
        try (HostMapping m = f.map(SIZE - PAGE, PAGE, dev.gmem.api.Prot.READ_WRITE, dev.gmem.api.MapFlags.SHARED)) {
          m.putLong(PAGE - 8, 0x1234);
          assertEquals(0x1234, m.getLong(PAGE - 8));
        }

        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, GIB, f, SIZE - GIB);
        SoftwareVcpu cpu = vm.softwareVcpu();
        assertEquals(0x1234, cpu.readLong(GPA + GIB - 8, false), "the guest sees the host's write in the file's last page");
        cpu.writeLong(GPA, 0x5678, false);

        f.setShareability(SIZE - PAGE, PAGE, Shareability.PRIVATE);
        cpu.writeLong(GPA + GIB - 8, 0x9abc, true);
        try (HostMapping m = f.map(SIZE - 2 * PAGE, 2 * PAGE, dev.gmem.api.Prot.READ_WRITE, dev.gmem.api.MapFlags.SHARED)) {
          assertEquals(Errno.EACCES, assertThrows(GmemException.class, () -> m.getLong(2 * PAGE - 8)).errno());
          assertEquals(0, m.getLong(0));
        }
        try (HostMapping m = f.map(SIZE - GIB, PAGE, dev.gmem.api.Prot.READ_WRITE, dev.gmem.api.MapFlags.SHARED)) {
          assertEquals(0x5678, m.getLong(0), "the host sees the guest's write at the slot's start");
        }

        f.punchHole(SIZE - GIB, GIB);
        assertEquals(0, f.inode().allocatedPages());
        assertEquals(0, cpu.readLong(GPA, false), "punched");
        assertEquals(0, cpu.readLong(GPA + GIB - 8, true), "punched, still private");
        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 0, null, 0);
      }
    }
  }
}
