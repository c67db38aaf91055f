package dev.gmem.core.conformance;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.MemoryExitException;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.convert.TestRuntimes;
import dev.gmem.core.sys.Sys;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The software vCPU's guest-fault rules on each backend: shared accesses to shared pages reach the
 * same bytes as host mappings; a private/shared mismatch or a memslot whose file is closed is a
 * {@code KVM_EXIT_MEMORY_FAULT} that touches no memory; no memslot is MMIO. Mismatches exist where
 * accesses carry their own private bit: those cases run on a SW_PROTECTED VM with such an arch
 * (TDX/SNP-like); a file created without INIT_SHARED starts private.
 */
class SoftwareVcpuTest {
  static final long PAGE = 4096;
  static final long GPA = 0x10_0000;
  static final long SHARED = GmemFlags.MMAP | GmemFlags.INIT_SHARED;
  static final long PRIVATE = GmemFlags.MMAP;
  static final int GM = Memslot.GUEST_MEMFD;
  private static final Sys SYS = Sys.load();

  static Stream<String> backends() {
    return Backends.names();
  }

  private static void withVm(String backend, VmType type, Consumer<Vm> test) {
    try (GmemRuntime rt = Backends.open(backend)) {
      test.accept(rt.createVm(type));
    }
  }

  /**
   * A SW_PROTECTED VM whose accesses carry their own private bit (as TDX's and SNP's do), where a
   * kind that disagrees with the page exits; core's own SW_PROTECTED takes the kind from the page
   * and never exits for it ({@link AccessKindTest}).
   */
  private static void withAccessBitVm(String backend, Consumer<Vm> test) {
    try (GmemRuntime rt = TestRuntimes.withAccessBitArch(backend)) {
      test.accept(rt.createVm(VmType.SW_PROTECTED));
    }
  }

  private static VcpuExit.MemoryFault fault(long flags, long gpa) {
    return new VcpuExit.MemoryFault(flags, gpa, PAGE);
  }

  private static byte[] pattern(int length, int seed) {
    byte[] b = new byte[length];
    for (int i = 0; i < length; i++) {
      b[i] = (byte) (seed + i * 7);
    }
    return b;
  }

  private static byte[] filled(int length, int value) {
    byte[] b = new byte[length];
    Arrays.fill(b, (byte) value);
    return b;
  }

  /** Whether the page at {@code offset} of a shared mapping is in the file's page cache. */
  private static boolean resident(HostMapping m, long offset) {
    return (SYS.mincore(m.address() + offset, PAGE)[0] & 1) != 0;
  }

  @ParameterizedTest
  @MethodSource("backends")
  void sharedAccessToASharedPageReachesTheHostMappingAndBack(String backend) {
    withVm(backend, VmType.DEFAULT, vm -> {
      try (GuestMemFile f = vm.createGuestMemFile(2 * PAGE, SHARED); HostMapping m = f.map()) {
        vm.setMemoryRegion(0, GM, GPA, 2 * PAGE, f, 0);
        SoftwareVcpu cpu = vm.softwareVcpu();

        byte[] guest = pattern(100, 1);
        assertNull(cpu.write(GPA + 0x10, guest, 0, guest.length, false));
        byte[] host = new byte[guest.length];
        m.read(0x10, host, 0, host.length);
        assertArrayEquals(guest, host, "the guest's write, seen by the host");

        m.write(PAGE + 0x20, pattern(64, 9), 0, 64);
        byte[] back = new byte[64];
        assertNull(cpu.read(GPA + PAGE + 0x20, back, 0, back.length, false));
        assertArrayEquals(pattern(64, 9), back, "the host's write, seen by the guest");

        cpu.writeLong(GPA + 0x800, 0x0102_0304_0506_0708L, false);
        assertEquals(0x0102_0304_0506_0708L, m.getLong(0x800));
        m.putLong(PAGE + 0x900, -2L);
        assertEquals(-2L, cpu.readLong(GPA + PAGE + 0x900, false));
        assertEquals(2, f.inode().allocatedPages());
      }
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void privateAccessToASharedPageIsAPrivateMemoryFaultThatTouchesNothing(String backend) {
    withAccessBitVm(backend, vm -> {
      try (GuestMemFile f = vm.createGuestMemFile(2 * PAGE, SHARED); HostMapping m = f.map()) {
        vm.setMemoryRegion(0, GM, GPA, 2 * PAGE, f, 0);
        SoftwareVcpu cpu = vm.softwareVcpu();

        assertEquals(fault(VcpuExit.MemoryFault.FLAG_PRIVATE, GPA + PAGE), cpu.write(GPA + PAGE + 5, pattern(3, 1), 0, 3, true));
        byte[] dst = filled(16, 0x77);
        assertEquals(fault(VcpuExit.MemoryFault.FLAG_PRIVATE, GPA), cpu.read(GPA + 0xff0, dst, 0, 16, true));
        assertArrayEquals(filled(16, 0x77), dst, "a faulting read leaves the buffer alone");
        assertEquals(0, f.inode().allocatedPages(), "a refused fault allocates nothing");
        assertEquals(false, resident(m, 0));
        assertEquals(false, resident(m, PAGE));
        assertEquals(0L, m.getLong(PAGE), "the refused private write did not reach memory");
      }
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void sharedAccessToAPrivatePageIsASharedMemoryFaultThatTouchesNothing(String backend) {
    withAccessBitVm(backend, vm -> {
      try (GuestMemFile f = vm.createGuestMemFile(2 * PAGE, PRIVATE); HostMapping m = f.map()) {
        vm.setMemoryRegion(0, GM, GPA, 2 * PAGE, f, 0);
        SoftwareVcpu cpu = vm.softwareVcpu();

        assertEquals(fault(0, GPA + PAGE), cpu.write(GPA + PAGE, pattern(8, 1), 0, 8, false));
        byte[] dst = filled(8, 0x77);
        assertEquals(fault(0, GPA), cpu.read(GPA + 8, dst, 0, 8, false));
        assertArrayEquals(filled(8, 0x77), dst);
        assertEquals(0, f.inode().allocatedPages(), "a refused fault allocates nothing");

        // The private access the page was made for works, and stays invisible to the host.
        assertNull(cpu.write(GPA + PAGE, pattern(8, 3), 0, 8, true));
        assertNull(cpu.read(GPA + PAGE, dst, 0, 8, true));
        assertArrayEquals(pattern(8, 3), dst);
        assertEquals(1, f.inode().allocatedPages());
        assertEquals(fault(0, GPA + PAGE), cpu.read(GPA + PAGE, dst, 0, 8, false), "still private for shared accesses");
        GmemException host = assertThrows(GmemException.class, () -> m.getLong(PAGE));
        assertEquals(Errno.EACCES, host.errno());
      }
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void accessOutsideEveryMemslotIsMmio(String backend) {
    withVm(backend, VmType.DEFAULT, vm -> {
      SoftwareVcpu cpu = vm.softwareVcpu();
      byte[] dst = filled(4, 0x77);
      assertEquals(new VcpuExit.Mmio(GPA, false, 4, 0), cpu.read(GPA, dst, 0, 4, false), "no memslots at all");
      try (GuestMemFile f = vm.createGuestMemFile(PAGE, SHARED)) {
        vm.setMemoryRegion(0, GM, GPA, PAGE, f, 0);
        assertEquals(new VcpuExit.Mmio(GPA - 8, false, 4, 0), cpu.read(GPA - 8, dst, 0, 4, false), "below the slot");
        assertEquals(new VcpuExit.Mmio(GPA + PAGE, true, 2, 0), cpu.write(GPA + PAGE, dst, 0, 2, false), "just past it");
        assertEquals(new VcpuExit.Mmio(GPA + PAGE, true, 2, 0), cpu.write(GPA + PAGE, dst, 0, 2, true), "private or not");
        assertArrayEquals(filled(4, 0x77), dst);
        assertEquals(0, f.inode().allocatedPages());
      }
    });
  }

  /** {@code private_mem_kvm_exits_test}: a private access through a memslot whose guest_memfd is gone. */
  @ParameterizedTest
  @MethodSource("backends")
  void memslotWhoseFileWasClosedIsAMemoryFault(String backend) {
    long gpa = 0xc000_0000L;
    withAccessBitVm(backend, vm -> {
      GuestMemFile f = vm.createGuestMemFile(PAGE, PRIVATE);
      vm.setMemoryRegion(1, GM, gpa, PAGE, f, 0);
      SoftwareVcpu cpu = vm.softwareVcpu();
      cpu.writeLong(gpa, 42, true);
      f.close();

      byte[] dst = filled(8, 0x77);
      assertEquals(fault(VcpuExit.MemoryFault.FLAG_PRIVATE, gpa), cpu.read(gpa, dst, 0, 8, true));
      assertEquals(fault(0, gpa), cpu.read(gpa + 16, dst, 0, 8, false));
      assertArrayEquals(filled(8, 0x77), dst);
      assertEquals(1, vm.memslots().size(), "the slot itself stays until deleted");
      vm.setMemoryRegion(1, GM, gpa, 0, null, 0);
      assertEquals(new VcpuExit.Mmio(gpa, false, 8, 0), cpu.read(gpa, dst, 0, 8, true), "deleted: no memslot");
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void multiPageAccessStopsAtTheFirstPageThatExits(String backend) {
    withAccessBitVm(backend, vm -> {
      try (GuestMemFile shared = vm.createGuestMemFile(PAGE, SHARED);
          GuestMemFile priv = vm.createGuestMemFile(PAGE, PRIVATE);
          HostMapping m = shared.map()) {
        vm.setMemoryRegion(0, GM, GPA, PAGE, shared, 0);
        vm.setMemoryRegion(1, GM, GPA + PAGE, PAGE, priv, 0);
        SoftwareVcpu cpu = vm.softwareVcpu();

        // A shared write over [GPA+0x800, GPA+0x1800): the first 0x800 bytes land in the shared
        // page (done, as on hardware), then the private page faults and nothing more happens.
        byte[] src = pattern(0x1000, 5);
        assertEquals(fault(0, GPA + PAGE), cpu.write(GPA + 0x800, src, 0, src.length, false));
        byte[] landed = new byte[0x800];
        m.read(0x800, landed, 0, landed.length);
        assertArrayEquals(Arrays.copyOf(src, 0x800), landed, "the first page's part was written");
        assertEquals(0, priv.inode().allocatedPages(), "the faulting page was not touched");

        // A read running off the end of the memory: the first part is copied, then MMIO.
        vm.setMemoryRegion(1, GM, GPA + PAGE, 0, null, 0);
        byte[] dst = filled(0x1000, 0x77);
        assertEquals(new VcpuExit.Mmio(GPA + PAGE, false, 0x800, 0), cpu.read(GPA + 0x800, dst, 0, dst.length, false));
        assertArrayEquals(Arrays.copyOf(src, 0x800), Arrays.copyOf(dst, 0x800), "the first page's part was read");
        assertArrayEquals(filled(0x800, 0x77), Arrays.copyOfRange(dst, 0x800, 0x1000), "nothing after the exit");
      }
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void readLongAndWriteLongThrowTheExit(String backend) {
    withAccessBitVm(backend, vm -> {
      try (GuestMemFile shared = vm.createGuestMemFile(PAGE, SHARED); GuestMemFile priv = vm.createGuestMemFile(PAGE, PRIVATE)) {
        vm.setMemoryRegion(0, GM, GPA, PAGE, shared, 0);
        vm.setMemoryRegion(1, GM, GPA + 2 * PAGE, PAGE, priv, 0);
        SoftwareVcpu cpu = vm.softwareVcpu();

        MemoryExitException e = assertThrows(MemoryExitException.class, () -> cpu.readLong(GPA + PAGE + 8, false));
        assertEquals(new VcpuExit.Mmio(GPA + PAGE + 8, false, 8, 0), e.exit());
        assertEquals(Errno.EFAULT, e.errno());
        e = assertThrows(MemoryExitException.class, () -> cpu.writeLong(GPA + PAGE + 8, 0x1234, false));
        assertEquals(new VcpuExit.Mmio(GPA + PAGE + 8, true, 8, 0x1234), e.exit());
        e = assertThrows(MemoryExitException.class, () -> cpu.readLong(GPA + 0x10, true));
        assertEquals(fault(VcpuExit.MemoryFault.FLAG_PRIVATE, GPA), e.exit());
        e = assertThrows(MemoryExitException.class, () -> cpu.writeLong(GPA + 2 * PAGE + 0x10, 1, false));
        assertEquals(fault(0, GPA + 2 * PAGE), e.exit());
        assertEquals(0, shared.inode().allocatedPages() + priv.inode().allocatedPages());
      }
    });
  }

  private static long littleEndian(byte[] b) {
    return ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getLong();
  }

  private static int intAt(HostMapping m, long offset) {
    byte[] b = new byte[4];
    m.read(offset, b, 0, 4);
    return ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getInt();
  }

  @ParameterizedTest
  @MethodSource("backends")
  void accessesStraddlingTwoPagesWork(String backend) {
    withAccessBitVm(backend, vm -> {
      try (GuestMemFile f = vm.createGuestMemFile(2 * PAGE, SHARED);
          GuestMemFile next = vm.createGuestMemFile(PAGE, SHARED);
          GuestMemFile priv = vm.createGuestMemFile(PAGE, PRIVATE);
          HostMapping m = f.map();
          HostMapping n = next.map()) {
        vm.setMemoryRegion(0, GM, GPA, 2 * PAGE, f, 0);
        vm.setMemoryRegion(1, GM, GPA + 2 * PAGE, PAGE, next, 0);
        vm.setMemoryRegion(2, GM, GPA + 3 * PAGE, PAGE, priv, 0);
        SoftwareVcpu cpu = vm.softwareVcpu();

        // Two pages of one file.
        cpu.writeLong(GPA + PAGE - 3, 0x1122_3344_5566_7788L, false);
        assertEquals(0x1122_3344_5566_7788L, cpu.readLong(GPA + PAGE - 3, false));
        byte[] host = new byte[8];
        m.read(PAGE - 3, host, 0, 8);
        assertEquals(0x1122_3344_5566_7788L, littleEndian(host));

        // The last page of one slot and the first of the next, in different files.
        cpu.writeLong(GPA + 2 * PAGE - 4, 0x0a0b_0c0d_0e0f_1011L, false);
        assertEquals(0x0a0b_0c0d_0e0f_1011L, cpu.readLong(GPA + 2 * PAGE - 4, false));
        assertEquals(0x0e0f_1011, intAt(m, 2 * PAGE - 4), "low half in the first file");
        assertEquals(0x0a0b_0c0d, intAt(n, 0), "high half in the second file");

        // Straddling into a page that faults: the exit names the second page; the first page's
        // four bytes were already written, the faulting page's were not.
        MemoryExitException e = assertThrows(MemoryExitException.class, () -> cpu.writeLong(GPA + 3 * PAGE - 4, -1L, false));
        assertEquals(fault(0, GPA + 3 * PAGE), e.exit());
        assertEquals(-1, intAt(n, PAGE - 4));
        assertEquals(0, priv.inode().allocatedPages());
        e = assertThrows(MemoryExitException.class, () -> cpu.readLong(GPA + 3 * PAGE - 4, false));
        assertEquals(fault(0, GPA + 3 * PAGE), e.exit());
      }
    });
  }
}
