package dev.gmem.alloc.hugetlb;

import dev.gmem.core.conformance.KernelCopy;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.api.HugePagePool;
import dev.gmem.core.conformance.Backends;
import dev.gmem.core.file.GuestMemFileImpl;
import dev.gmem.core.inode.GuestMemInodeImpl;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A real 1 GiB page: staged splitting (1 GiB → 2 MiB → 4 KiB only where pages turn shared),
 * merging back level by level, the mapping order at each stage, punch, and the pool given back.
 * Skipped, with the reason, where the kernel cannot provide a gigantic page.
 */
class GigantPageTest {
  /** One gigabyte for the file and one to detach it into once a raw mapping reached it (see the second test). */
  @RegisterExtension static final HugePool POOL = HugePool.of(0, 2);

  static final long PAGE = Folio.PAGE_SIZE;
  static final long GIB = HugePool.GIB1;
  static final long PIECE = 512;

  static Stream<String> backends() {
    return Backends.names();
  }

  private static long count(List<Folio> folios, int order) {
    return folios.stream().filter(f -> f.order() == order).count();
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aGigabytePageSplitsOnlyThePiecesThatTurnSharedAndMergesBackLevelByLevel(String backend) {
    POOL.assumeOneGiB();
    HugePagePool before = HugePool.counters(GIB);
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      try (GuestMemFile f = vm.createGuestMemFile(GIB, GmemFlags.MMAP | GmemFlags.hugePageSize(30))) {
        assertEquals(before.reserved() + 1, HugePool.counters(GIB).reserved());
        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, GIB, f, 0);
        SoftwareVcpu cpu = vm.softwareVcpu();
        cpu.writeLong(0, 0x1234, true);
        assertEquals(List.of(new Folio(0, 18, 0)), f.inode().folios(0, GIB / PAGE));
        assertEquals(before.free() - 1, HugePool.counters(GIB).free());
        assertEquals(18, cpu.mappingOrder(PAGE * 1000, true));

        long a = 3 * PIECE + 7;
        long b = 300 * PIECE + 1;
        f.setShareability(a * PAGE, PAGE, Shareability.SHARED);
        f.setShareability(b * PAGE, PAGE, Shareability.SHARED);
        List<Folio> folios = f.inode().folios(0, GIB / PAGE);
        assertEquals(510, count(folios, 9), "the untouched 2 MiB pieces stay whole");
        assertEquals(2 * PIECE, count(folios, 0), "only the two pieces holding a shared page are split to 4 KiB");
        assertEquals(9, cpu.mappingOrder(0, true));
        assertEquals(0, cpu.mappingOrder(3 * PIECE * PAGE, true));
        assertEquals(9, f.inode().mappingOrder(4 * PIECE));

        try (HostMapping m = f.map()) {
          m.putLong(a * PAGE, 0xaaaa);
          assertEquals(0xaaaa, m.getLong(a * PAGE));
          assertEquals(Errno.EFAULT, KernelCopy.read(m.address() + a * PAGE, 8), "the mixed gigabyte is covered whole");
        }

        f.setShareability(a * PAGE, PAGE, Shareability.PRIVATE);
        folios = f.inode().folios(0, GIB / PAGE);
        assertEquals(511, count(folios, 9), "the piece is private again: merged back to 2 MiB");
        assertEquals(9, cpu.mappingOrder(a * PAGE, true));

        f.setShareability(b * PAGE, PAGE, Shareability.PRIVATE);
        assertEquals(List.of(new Folio(0, 18, 0)), f.inode().folios(0, GIB / PAGE), "all private: one 1 GiB folio again");
        assertEquals(18, cpu.mappingOrder(a * PAGE, true));
        assertEquals(0x1234, cpu.readLong(0, true));
        assertEquals(0xaaaa, cpu.readLong(a * PAGE, true));

        f.punchHole(0, 2L << 20);
        assertEquals(0, cpu.readLong(0, true), "a partial punch zeroes");
        assertEquals(0xaaaa, cpu.readLong(a * PAGE, true));
        assertEquals(before.free() - 1, HugePool.counters(GIB).free(), "and frees nothing");
        f.punchHole(0, GIB);
        assertEquals(0, f.inode().allocatedPages());
        assertEquals(HugePool.plus(before, 0, 1), HugePool.counters(GIB),
            "the whole page is back in the pool, still reserved for the file");
      }
    }
    assertEquals(before, HugePool.counters(GIB));
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aSharedGigabytePageIsHandedOutAsFourKilobytePagesAndMergesInOneStep(String backend) {
    POOL.assumeOneGiB();
    try (GmemRuntime rt = Backends.open(backend);
        GuestMemFile f = rt.createVm(VmType.SW_PROTECTED).createGuestMemFile(GIB, GmemFlags.MMAP | GmemFlags.INIT_SHARED | GmemFlags.hugePageSize(30));
        HostMapping m = f.map()) {
      m.putLong(GIB - 8, 7);
      assertNull(KernelCopy.read(m.address() + GIB - 8, 8), "all shared: the gigabyte is mapped for raw access");
      assertEquals(GIB / PAGE, f.inode().folios(0, GIB / PAGE).size());
      GuestMemInodeImpl inode = ((GuestMemFileImpl) f).inodeImpl();
      long bytes = inode.filemap().estimatedBytes() + ((HugetlbInode) inode.allocator()).tracker().estimatedBytes();
      assertTrue(bytes <= 16 * (GIB / PAGE), "a 1 GiB page split to 4 KiB is tracked in " + bytes + " bytes");
      assertEquals(bytes, f.inode().trackingBytes(), "the API reports filemap plus split tracker");
      assertEquals(GIB / PAGE, f.inode().folioCount());
      f.setShareability(0, GIB, Shareability.PRIVATE);
      assertEquals(List.of(new Folio(0, 18, 0)), f.inode().folios(0, GIB / PAGE));
      assertEquals(1, f.inode().folioCount());
      assertEquals(18, f.inode().orderAt(GIB / PAGE - 1));
      assertEquals(Errno.EFAULT, KernelCopy.read(m.address() + GIB - 8, 8));
    }
  }
}
