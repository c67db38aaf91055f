package dev.gmem.userfault;

import static dev.gmem.core.conformance.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.AllocatorProvider;
import dev.gmem.core.conformance.Backends;
import dev.gmem.core.convert.TestRuntimes;
import dev.gmem.core.spi.CountingAllocator;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every bitmap rule of KVM Userfault v3 (upstream-proposals §4.1) on the software vCPU, on both
 * backends: the exit, the flag gating the bitmap, pages mapped before a bit was set, the zap on
 * setting the flag (and the late toggle), the 4 KiB limit and its lifting, installation with
 * release ordering and EEXIST.
 */
class KvmUserfaultTest {
  static final long PAGE = 4096;
  static final long GPA = 0x10_0000;
  static final int SLOT_FLAGS = Memslot.GUEST_MEMFD | Userfault.MEM_USERFAULT;

  static Stream<String> backends() {
    return Backends.names();
  }

  static Userfault userfault(GmemRuntime rt) {
    return rt.feature(Userfault.class).orElseThrow();
  }

  static VcpuExit.MemoryFault userfaultExit(long gpa) {
    return new VcpuExit.MemoryFault(Userfault.EXIT_FLAG_USERFAULT, gpa & ~(PAGE - 1), PAGE);
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aSetBitMakesTheAccessExitUntilTheDataIsInstalledAndTheBitCleared(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Userfault uf = userfault(rt);
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(16 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, SLOT_FLAGS, GPA, 16 * PAGE, f, 0);
      UserfaultBitmap b = uf.bitmap(vm, 0);
      assertEquals(16, b.pages());
      b.set(3);
      assertTrue(uf.isMissing(vm, GPA + 3 * PAGE + 100));

      assertEquals(userfaultExit(GPA + 3 * PAGE), vm.softwareVcpu().read(GPA + 3 * PAGE + 8, new byte[8], 0, 8, false));
      assertEquals(userfaultExit(GPA + 3 * PAGE), vm.softwareVcpu().write(GPA + 3 * PAGE, new byte[1], 0, 1, false));
      assertNull(vm.softwareVcpu().write(GPA + 2 * PAGE, new byte[] {7}, 0, 1, false), "a page with a clear bit is unaffected");

      byte[] data = new byte[(int) PAGE];
      data[8] = 42;
      uf.install(vm, GPA + 3 * PAGE, ByteBuffer.wrap(data));
      assertFalse(b.isSet(3), "installing clears the bit");
      assertEquals(42, vm.softwareVcpu().readLong(GPA + 3 * PAGE + 8, false));
      expect(Errno.EEXIST, () -> uf.install(vm, GPA + 3 * PAGE, ByteBuffer.wrap(data)));
      expect(Errno.EINVAL, () -> uf.install(vm, GPA + 64 * PAGE, ByteBuffer.wrap(data)));
      expect(Errno.EINVAL, () -> uf.bitmap(vm, 5));
      assertEquals(1, uf.stats().resolved(FaultSource.VCPU_USERFAULT));
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void theBitmapMattersOnlyWhileTheFlagIsSetAndSettingItLateZapsMappedPages(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Userfault uf = userfault(rt);
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(4 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 4 * PAGE, f, 0);
      UserfaultBitmap b = uf.bitmap(vm, 0);
      b.set(1);
      assertNull(vm.softwareVcpu().write(GPA + PAGE, new byte[] {5}, 0, 1, false), "flag clear: the bitmap is ignored");

      Memslot on = vm.setMemoryRegion(0, SLOT_FLAGS, GPA, 4 * PAGE, f, 0); // the late toggle
      assertEquals(SLOT_FLAGS, on.flags());
      assertEquals(userfaultExit(GPA + PAGE), vm.softwareVcpu().read(GPA + PAGE, new byte[1], 0, 1, false), "setting the flag zapped it");

      assertNull(vm.softwareVcpu().read(GPA + 2 * PAGE, new byte[1], 0, 1, false)); // mapped now, bit clear
      b.set(2);
      assertNull(vm.softwareVcpu().read(GPA + 2 * PAGE, new byte[1], 0, 1, false), "a bit set after the page was mapped does not affect it");

      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 4 * PAGE, f, 0);
      vm.setMemoryRegion(0, SLOT_FLAGS, GPA, 4 * PAGE, f, 0);
      assertEquals(userfaultExit(GPA + 2 * PAGE), vm.softwareVcpu().read(GPA + 2 * PAGE, new byte[1], 0, 1, false),
          "until the flag is toggled off and on");
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void mappingsAre4kWhileTheFlagIsSetAndHugeAgainOnceCleared(String backend) {
    try (GmemRuntime rt = TestRuntimes.withProviders(backend, Map.of(AllocatorProvider.class, List.of(CountingAllocator.BlockProvider.class)), Map.of())) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED); // private memory: the 2 MiB folio stays whole
      long huge = 2L << 20;
      GuestMemFile f = vm.createGuestMemFile(huge, GmemFlags.MMAP | CountingAllocator.BLOCKS);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, huge, f, 0);
      vm.softwareVcpu().writeLong(0, 1, true);
      assertEquals(9, vm.softwareVcpu().mappingOrder(0, true));
      vm.setMemoryRegion(0, SLOT_FLAGS, 0, huge, f, 0);
      assertEquals(0, vm.softwareVcpu().mappingOrder(0, true), "4 KiB only while USERFAULT is set");
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, huge, f, 0);
      assertEquals(9, vm.softwareVcpu().mappingOrder(0, true), "lifted with the flag");
    }
  }

  @Test
  void theBitmapIsAMemfdAnotherProcessCanMapAndItsWordsAreTheKernelLayout() throws Exception {
    try (GmemRuntime rt = Backends.open("memfd")) {
      Userfault uf = userfault(rt);
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(130 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, SLOT_FLAGS, GPA, 130 * PAGE, f, 0);
      UserfaultBitmap b = uf.bitmap(vm, 0);
      b.set(0);
      b.set(65);
      b.set(129);
      byte[] words = java.nio.file.Files.readAllBytes(java.nio.file.Path.of("/proc/self/fd/" + b.fd()));
      ByteBuffer w = ByteBuffer.wrap(words).order(java.nio.ByteOrder.LITTLE_ENDIAN);
      assertArrayEquals(new long[] {1L, 1L << 1, 1L << 1}, new long[] {w.getLong(0), w.getLong(8), w.getLong(16)});
      assertEquals(3, b.countSet());
      assertTrue(uf.bitmap(vm, 0) == b, "one bitmap per slot");
    }
  }

  @Test
  void theKernelsOwnUserfaultIsProbedByBehaviour() {
    try (GmemRuntime rt = Backends.open("kvm")) {
      // 6.18 refuses KVM_MEM_USERFAULT on a guest_memfd memslot: gmem implements it.
      assertFalse(userfault(rt).kernelUserfault());
    }
  }

  @Test
  void aRealVcpuExitsOnAMissingDataPageAndRunsOnOnceItIsInstalled() {
    try (GmemRuntime rt = Backends.open("kvm")) {
      Userfault uf = userfault(rt);
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(16 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, SLOT_FLAGS, 0, 16 * PAGE, f, 0);
      vm.guestMemory().write(RealGuest.CODE, RealGuest.INCREMENT, 0, RealGuest.INCREMENT.length);
      UserfaultBitmap b = uf.bitmap(vm, 0);
      b.set(RealGuest.DATA / PAGE);
      try (dev.gmem.api.Vcpu cpu = vm.createVcpu(0)) {
        RealGuest.startRealMode(cpu, RealGuest.CODE);
        assertEquals(userfaultExit(RealGuest.DATA), cpu.run());
        assertEquals(userfaultExit(RealGuest.DATA), cpu.run(), "still missing: the same exit again");
        byte[] page = new byte[(int) PAGE];
        page[0] = 41;
        uf.install(vm, RealGuest.DATA, ByteBuffer.wrap(page));
        VcpuExit.Io out = assertInstanceOf(VcpuExit.Io.class, cpu.run());
        assertEquals(42, out.data()[0], "the guest read the installed byte");
        assertInstanceOf(VcpuExit.Hlt.class, cpu.run());
        assertEquals(42, vm.guestMemory().loadLong(RealGuest.DATA) >>> 8 & 0xff);
      }
    }
  }

  @Test
  void aRealVcpuExitsOnAMissingCodePage() {
    try (GmemRuntime rt = Backends.open("kvm")) {
      Userfault uf = userfault(rt);
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(16 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, 16 * PAGE, f, 0);
      UserfaultBitmap b = uf.bitmap(vm, 0);
      b.set(RealGuest.CODE / PAGE);
      vm.setMemoryRegion(0, SLOT_FLAGS, 0, 16 * PAGE, f, 0); // late toggle, before the vCPU exists
      try (dev.gmem.api.Vcpu cpu = vm.createVcpu(0)) {
        RealGuest.startRealMode(cpu, RealGuest.CODE);
        assertEquals(userfaultExit(RealGuest.CODE), cpu.run());
        byte[] code = new byte[(int) PAGE];
        System.arraycopy(RealGuest.INCREMENT, 0, code, 0, RealGuest.INCREMENT.length);
        uf.install(vm, RealGuest.CODE, ByteBuffer.wrap(code));
        VcpuExit.Io out = assertInstanceOf(VcpuExit.Io.class, cpu.run());
        assertEquals(1, out.data()[0], "[0x2000] was 0: the guest stored 1");
      }
    }
  }
}
