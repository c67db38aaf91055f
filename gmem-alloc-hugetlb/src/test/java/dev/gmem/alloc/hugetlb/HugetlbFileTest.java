package dev.gmem.alloc.hugetlb;

import static dev.gmem.alloc.hugetlb.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import dev.gmem.api.Errno;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.MapFlags;
import dev.gmem.api.Memslot;
import dev.gmem.api.Pin;
import dev.gmem.api.Registers;
import dev.gmem.api.Segment;
import dev.gmem.api.Shareability;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.api.HugePagePool;
import dev.gmem.core.conformance.Backends;
import dev.gmem.core.conformance.KernelCopy;
import dev.gmem.core.convert.TestInode;
import dev.gmem.core.sys.Sys;
import java.util.List;
import java.util.function.BiConsumer;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** 2 MiB hugetlb files end to end through the public API, on real huge pages, on every backend. */
class HugetlbFileTest {
  @RegisterExtension static final HugePool POOL = HugePool.of(8, 0);

  static final long PAGE = Folio.PAGE_SIZE;
  static final long HUGE = HugePool.MIB2;
  static final long BLOCK = HUGE / PAGE;
  static final long SIZE = 4 * HUGE;
  static final long HUGE_2M = GmemFlags.MMAP | GmemFlags.hugePageSize(21);
  private static final Sys SYS = TestInode.SYS;

  static Stream<String> backends() {
    return Backends.names();
  }

  private static void withFile(String backend, long flags, BiConsumer<Vm, GuestMemFile> test) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      try (GuestMemFile f = vm.createGuestMemFile(SIZE, flags)) {
        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, SIZE, f, 0);
        test.accept(vm, f);
      }
    }
  }

  private static List<Folio> folios(GuestMemFile f, long start, long end) {
    return f.inode().folios(start, end);
  }

  @ParameterizedTest
  @MethodSource("backends")
  void folioSizeFollowsShareabilityAndTheGuestMapsAtIt(String backend) {
    HugePagePool before = HugePool.counters(HUGE);
    withFile(backend, HUGE_2M, (vm, f) -> {
      assertEquals(before.reserved() + 4, HugePool.counters(HUGE).reserved(), "the file reserved its four pages");
      SoftwareVcpu cpu = vm.softwareVcpu();
      cpu.writeLong(8, 0x1111, true);
      assertEquals(List.of(new Folio(0, 9, 0)), folios(f, 0, BLOCK), "a private fault maps a whole 2 MiB folio");
      assertEquals(before.free() - 1, HugePool.counters(HUGE).free(), "from the real pool");
      assertEquals(9, f.inode().mappingOrder(7));
      assertEquals(9, cpu.mappingOrder(7 * PAGE, true));

      f.setShareability(3 * PAGE, PAGE, Shareability.SHARED);
      assertEquals(BLOCK, folios(f, 0, BLOCK).size(), "sharing one page splits the huge page to 4 KiB");
      assertEquals(0, f.inode().mappingOrder(7));
      assertEquals(0, cpu.mappingOrder(7 * PAGE, true));
      try (HostMapping m = f.map()) {
        m.putLong(3 * PAGE, 0x3333);
        expect(Errno.EACCES, () -> m.getLong(0));
      }

      f.setShareability(3 * PAGE, PAGE, Shareability.PRIVATE);
      assertEquals(List.of(new Folio(0, 9, 0)), folios(f, 0, BLOCK), "all private again: merged");
      assertEquals(9, cpu.mappingOrder(0, true));
      assertEquals(0x1111, cpu.readLong(8, true), "split and merge keep contents");
      assertEquals(0x3333, cpu.readLong(3 * PAGE, true));
      assertEquals(-1, cpu.mappingOrder(SIZE, true), "outside every memslot");
    });
    assertEquals(before, HugePool.counters(HUGE));
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aSharedHostFaultHandsTheHugePageOutSplit(String backend) {
    withFile(backend, HUGE_2M | GmemFlags.INIT_SHARED, (vm, f) -> {
      try (HostMapping m = f.map()) {
        m.putLong(BLOCK * PAGE + 5, 42);
        assertEquals(BLOCK, folios(f, BLOCK, 2 * BLOCK).size());
        assertEquals(BLOCK, f.inode().allocatedPages());
        f.setShareability(BLOCK * PAGE, HUGE, Shareability.PRIVATE);
        assertEquals(List.of(new Folio(BLOCK, 9, 0)), folios(f, BLOCK, 2 * BLOCK));
      }
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aPartialHugePagePunchZeroesAndAWholeOneIsMergedAndFreedUnlessPinned(String backend) {
    withFile(backend, HUGE_2M | GmemFlags.INIT_SHARED, (vm, f) -> {
      SoftwareVcpu cpu = vm.softwareVcpu();
      try (HostMapping m = f.map()) {
        for (long p = 0; p < BLOCK; p++) {
          m.putLong(p * PAGE, p + 1);
        }
        f.setShareability(0, 256 * PAGE, Shareability.PRIVATE);
        HugePagePool afterFault = HugePool.counters(HUGE);
        List<Folio> folios = folios(f, 0, BLOCK);

        f.punchHole(10 * PAGE, 300 * PAGE);
        assertEquals(folios, folios(f, 0, BLOCK), "a partial punch frees no folio");
        assertEquals(afterFault, HugePool.counters(HUGE), "nor a page");
        assertEquals(10, cpu.readLong(9 * PAGE, true));
        assertEquals(0, cpu.readLong(10 * PAGE, true), "private pages are zeroed");
        assertEquals(0, m.getLong(309 * PAGE), "shared pages too");
        assertEquals(311, m.getLong(310 * PAGE));
        assertEquals(Shareability.PRIVATE, f.shareability(10 * PAGE), "punch keeps shareability");

        Pin pin = f.pin(400 * PAGE, 2 * PAGE);
        List<Folio> pinned = folios(f, 0, BLOCK);
        GmemException e = expect(Errno.EAGAIN, () -> f.punchHole(0, 2 * HUGE));
        assertEquals(400 * PAGE, e.errorOffset().orElseThrow());
        assertEquals(pinned, folios(f, 0, BLOCK), "a refused punch changes nothing");
        assertEquals(401, m.getLong(400 * PAGE));
        assertEquals(afterFault, HugePool.counters(HUGE));

        pin.close();
        f.punchHole(0, HUGE);
        assertEquals(0, f.inode().allocatedPages(), "the split huge page was merged and freed");
        assertEquals(afterFault.free() + 1, HugePool.counters(HUGE).free(), "back in the pool");
        assertEquals(afterFault.reserved() + 1, HugePool.counters(HUGE).reserved(), "and still reserved for the file");
        assertEquals(Shareability.PRIVATE, f.shareability(0));
        assertEquals(Shareability.SHARED, f.shareability(256 * PAGE));
        assertEquals(0, m.getLong(400 * PAGE), "a fresh page reads zero");
        assertEquals(0, cpu.readLong(0, true));
      }
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void theGuestMapsHugeOnlyWhereGpaAndFileOffsetAlign(String backend) {
    withFile(backend, HUGE_2M, (vm, f) -> {
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, 0, f, 0);
      vm.setMemoryRegion(1, Memslot.GUEST_MEMFD, 1L << 32, HUGE, f, HUGE);
      vm.setMemoryRegion(2, Memslot.GUEST_MEMFD, (1L << 33) + PAGE, HUGE, f, 2 * HUGE);
      SoftwareVcpu cpu = vm.softwareVcpu();
      cpu.writeLong((1L << 32) + 16, 1, true);
      cpu.writeLong((1L << 33) + PAGE, 2, true);
      assertEquals(9, cpu.mappingOrder((1L << 32) + 5 * PAGE, true));
      assertEquals(9, f.inode().mappingOrder(2 * BLOCK), "the folio is huge");
      assertEquals(0, cpu.mappingOrder((1L << 33) + PAGE, true), "but that slot's GPA is not 2 MiB aligned with the file");
      assertNull(cpu.read(1L << 32, new byte[8], 0, 8, true));
    });
  }

  @Test
  void asTheDefaultAllocatorItUsesTheKernelsDefaultHugePageSize() {
    try (GmemRuntime rt = GmemRuntime.builder().property("gmem.allocator", HugetlbAllocatorProvider.ID).build()) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      try (GuestMemFile f = vm.createGuestMemFile(HUGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED); HostMapping m = f.map()) {
        m.putLong(0, 1);
        f.setShareability(0, HUGE, Shareability.SHARED);
        assertEquals(BLOCK, f.inode().allocatedPages(), "one 2 MiB page (Hugepagesize on x86)");
        expect(Errno.EINVAL, () -> vm.createGuestMemFile(PAGE, GmemFlags.MMAP));
      }
    }
  }

  /**
   * A fixed address must lie on a huge-page boundary (hugetlbfs's EINVAL), a failed call leaves the
   * range as it was, MAP_FIXED_NOREPLACE refuses a range gmem already maps, and MAP_LOCKED faults
   * in the whole shared huge page, never a private one.
   */
  @ParameterizedTest
  @MethodSource("backends")
  void mapsAtAFixedAddressOnHugePageBoundariesAndLocksOnlySharedHugePages(String backend) {
    HugePagePool before = HugePool.counters(HUGE);
    withFile(backend, HUGE_2M | GmemFlags.INIT_SHARED, (vm, f) -> {
      f.setShareability(HUGE, HUGE, Shareability.PRIVATE);
      // An inaccessible anonymous arena (MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE) to map into.
      long raw = SYS.mmap(0, 4 * HUGE, 0, MapFlags.PRIVATE | 0x20 | 0x4000, -1, 0);
      long arena = (raw + HUGE - 1) & -HUGE;
      try {
        expect(Errno.EINVAL, () -> f.map(arena + PAGE, 0, HUGE, 3, MapFlags.SHARED | MapFlags.FIXED));
        assertEquals(BLOCK, SYS.mincore(arena, HUGE).length, "a failed call left the arena mapped");
        try (HostMapping m = f.map(arena, 0, 2 * HUGE, 3, MapFlags.SHARED | MapFlags.FIXED | MapFlags.LOCKED)) {
          assertEquals(arena, m.address());
          assertEquals(BLOCK, f.inode().allocatedPages(), "MAP_LOCKED faulted in the shared huge page only");
          assertEquals(before.free() - 1, HugePool.counters(HUGE).free(), "one page from the real pool");
          assertNull(KernelCopy.read(arena + 8, 8), "the shared huge page is mapped");
          assertEquals(Errno.EFAULT, KernelCopy.read(arena + HUGE, 8), "the private one is not");
          expect(Errno.EEXIST, () -> f.map(arena + HUGE, 2 * HUGE, HUGE, 3, MapFlags.SHARED | MapFlags.FIXED_NOREPLACE));
        }
      } finally {
        SYS.munmap(raw, 4 * HUGE);
      }
    });
  }

  @Test
  void aRealKvmGuestRunsOnHugePagesAndSeesAPartialPunchAsZeros() {
    Assumptions.assumeTrue(Backends.names().anyMatch("kvm"::equals), "host has no /dev/kvm");
    // mov al, [0x2000]; inc al; out 0x10, al; hlt
    byte[] guest = {(byte) 0xa0, 0x00, 0x20, (byte) 0xfe, (byte) 0xc0, (byte) 0xe6, 0x10, (byte) 0xf4};
    withFile("kvm", HUGE_2M | GmemFlags.INIT_SHARED, (vm, f) -> {
      try (HostMapping m = f.map(); Vcpu vcpu = vm.createVcpu(0)) {
        m.write(0x1000, guest, 0, guest.length);
        m.putByte(0x2000, (byte) 0x41);
        vcpu.setSpecialRegisters(vcpu.specialRegisters().withCodeSegment(Segment.realMode(0, true)).withDataSegments(Segment.realMode(0, false)));
        vcpu.setRegisters(Registers.initial().withRip(0x1000));
        assertEquals(0x42, ((VcpuExit.Io) vcpu.run()).value(), "the guest read the host's byte from the huge page");
        f.punchHole(0x2000, PAGE);
        assertEquals(BLOCK, folios(f, 0, BLOCK).size(), "a partial punch frees no folio");
        vcpu.setRegisters(Registers.initial().withRip(0x1000));
        assertEquals(0x01, ((VcpuExit.Io) vcpu.run()).value(), "and the guest sees the punched page as zeros");
      }
    });
  }
}
