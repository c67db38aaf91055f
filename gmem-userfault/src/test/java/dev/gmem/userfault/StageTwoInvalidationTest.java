package dev.gmem.userfault;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import java.nio.ByteBuffer;
import java.util.function.BiConsumer;
import org.junit.jupiter.api.Test;

/**
 * A punch or a conversion unmaps stage 2 ({@code kvm_gmem_invalidate_begin}): a page a vCPU access
 * mapped since USERFAULT was set — which a bit set later does not affect — exits again once it was
 * punched or converted, on a real KVM vCPU (gmem's stage-2 view of the slot is zapped again) and on
 * the software vCPU (the feature forgets the page as mapped).
 */
class StageTwoInvalidationTest {
  static final long PAGE = 4096;
  static final int SLOT_FLAGS = Memslot.GUEST_MEMFD | Userfault.MEM_USERFAULT;

  /** 16-bit, DS base 0: reports the byte at 0x2000 on port 0x10, halts, and does it again when run on. */
  static final byte[] READ_LOOP = RealGuest.bytes(
      0xA0, 0x00, 0x20, //   start: mov al, [0x2000]
      0xE6, 0x10, //                out 0x10, al
      0xF4, //                      hlt
      0xEB, 0xF8); //               jmp start

  @Test
  void aPunchedPageUnderASetBitExitsAgainOnARealVcpu() {
    invalidationMakesTheMappedPageExitAgain(VmType.DEFAULT, (f, off) -> f.punchHole(off, PAGE));
  }

  @Test
  void aConvertedPageUnderASetBitExitsAgainOnARealVcpu() {
    invalidationMakesTheMappedPageExitAgain(VmType.SW_PROTECTED, (f, off) -> {
      f.setShareability(off, PAGE, Shareability.PRIVATE);
      f.setShareability(off, PAGE, Shareability.SHARED);
    });
  }

  private static void invalidationMakesTheMappedPageExitAgain(VmType type, BiConsumer<GuestMemFile, Long> invalidate) {
    try (GmemRuntime rt = Backends.open("kvm")) {
      Userfault uf = rt.feature(Userfault.class).orElseThrow();
      Vm vm = rt.createVm(type);
      GuestMemFile f = vm.createGuestMemFile(16 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, SLOT_FLAGS, 0, 16 * PAGE, f, 0);
      vm.guestMemory().write(RealGuest.CODE, READ_LOOP, 0, READ_LOOP.length);
      UserfaultBitmap b = uf.bitmap(vm, 0);
      long data = RealGuest.DATA;
      b.set(data / PAGE);
      try (Vcpu cpu = vm.createVcpu(0)) {
        RealGuest.startRealMode(cpu, RealGuest.CODE);
        assertEquals(KvmUserfaultTest.userfaultExit(data), cpu.run());
        uf.install(vm, data, page(41));
        assertEquals(41, assertInstanceOf(VcpuExit.Io.class, cpu.run()).data()[0]);
        assertInstanceOf(VcpuExit.Hlt.class, cpu.run());

        b.set(data / PAGE);
        assertEquals(41, assertInstanceOf(VcpuExit.Io.class, cpu.run()).data()[0], "mapped since the flag was set: a later bit does not affect it");
        assertInstanceOf(VcpuExit.Hlt.class, cpu.run());
        assertNull(vm.softwareVcpu().read(data, new byte[1], 0, 1, false), "nor the software vCPU's access");

        invalidate.accept(f, data);
        assertEquals(KvmUserfaultTest.userfaultExit(data), vm.softwareVcpu().read(data, new byte[1], 0, 1, false),
            "the invalidation unmapped it: the set bit counts again");
        assertEquals(KvmUserfaultTest.userfaultExit(data), cpu.run(), "the real vCPU exits again");
        uf.install(vm, data, page(7));
        assertEquals(7, assertInstanceOf(VcpuExit.Io.class, cpu.run()).data()[0], "and reads the newly installed page");
      }
    }
  }

  @Test
  void anInvalidationOutsideTheSlotsPagesLeavesThemMapped() {
    try (GmemRuntime rt = Backends.open("kvm")) {
      Userfault uf = rt.feature(Userfault.class).orElseThrow();
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(32 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, SLOT_FLAGS, 0, 16 * PAGE, f, 0);
      vm.guestMemory().write(RealGuest.CODE, READ_LOOP, 0, READ_LOOP.length);
      UserfaultBitmap b = uf.bitmap(vm, 0);
      try (Vcpu cpu = vm.createVcpu(0)) {
        RealGuest.startRealMode(cpu, RealGuest.CODE);
        vm.guestMemory().write(RealGuest.DATA, new byte[] {9}, 0, 1);
        assertEquals(9, assertInstanceOf(VcpuExit.Io.class, cpu.run()).data()[0]);
        assertInstanceOf(VcpuExit.Hlt.class, cpu.run());
        b.set(RealGuest.DATA / PAGE);
        f.punchHole(20 * PAGE, 4 * PAGE); // file pages no slot binds
        assertEquals(9, assertInstanceOf(VcpuExit.Io.class, cpu.run()).data()[0], "still mapped");
      }
    }
  }

  static ByteBuffer page(int firstByte) {
    byte[] p = new byte[(int) PAGE];
    p[0] = (byte) firstByte;
    return ByteBuffer.wrap(p);
  }
}
