package dev.gmem.examples.guest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.SpecialRegisters;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.userfault.Userfault;
import dev.gmem.userfault.UserfaultBitmap;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/** The 64-bit guest on real KVM vCPUs (kvm backend): several vCPUs, each on its own range. */
class LongModeGuestTest {
  static final long PAGE = LongModeGuest.PAGE;

  static GmemRuntime runtime() {
    return GmemRuntime.builder().property("gmem.backend", "kvm").build();
  }

  @Test
  void fourVcpusEachFillTheirOwnRangeInLongModeAndSumIt() throws Exception {
    int vcpus = 4;
    long perVcpu = 64;
    try (GmemRuntime rt = runtime()) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      long size = LongModeGuest.memorySize(vcpus * perVcpu);
      GuestMemFile f = vm.createGuestMemFile(size, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, size, f, 0);
      LongModeGuest.load(vm.guestMemory());
      ExecutorService pool = Executors.newFixedThreadPool(vcpus);
      try {
        List<Future<Long>> sums = new ArrayList<>();
        for (int i = 0; i < vcpus; i++) {
          int id = i;
          sums.add(pool.submit(() -> {
            long start = LongModeGuest.DATA_BASE + id * perVcpu * PAGE;
            try (Vcpu cpu = vm.createVcpu(id)) {
              LongModeGuest.start(cpu, start, perVcpu, 0x5eed0000L + id);
              VcpuExit.Io fill = assertInstanceOf(VcpuExit.Io.class, cpu.run());
              assertEquals(LongModeGuest.FILL_PORT, fill.port());
              assertTrue((cpu.specialRegisters().efer() & SpecialRegisters.EFER_LMA) != 0, "long mode active");
              assertInstanceOf(VcpuExit.Hlt.class, cpu.run());
              VcpuExit.Io sum = assertInstanceOf(VcpuExit.Io.class, cpu.run());
              assertEquals(LongModeGuest.SUM_PORT, sum.port());
              return cpu.registers().rdx();
            }
          }));
        }
        for (int i = 0; i < vcpus; i++) {
          long start = LongModeGuest.DATA_BASE + i * perVcpu * PAGE;
          assertEquals(LongModeGuest.expectedSum(start, perVcpu, 0x5eed0000L + i), sums.get(i).get());
          for (long p = 0; p < perVcpu; p++) {
            long gpa = start + p * PAGE;
            assertEquals(LongModeGuest.pattern(gpa, 0x5eed0000L + i), vm.guestMemory().loadLong(gpa), "page at 0x" + Long.toHexString(gpa));
          }
        }
      } finally {
        pool.shutdownNow();
      }
    }
  }

  @Test
  void itsPagesUnderSetUserfaultBitsExitOnePageAtATime() {
    long pages = 8;
    try (GmemRuntime rt = runtime()) {
      Userfault uf = rt.feature(Userfault.class).orElseThrow();
      Vm vm = rt.createVm(VmType.DEFAULT);
      long size = LongModeGuest.memorySize(pages);
      GuestMemFile f = vm.createGuestMemFile(size, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      // KVM itself walks the guest's page tables through userspace_addr (shadow paging): they live
      // in a slot of their own without USERFAULT, the touched pages in one with it.
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, LongModeGuest.DATA_BASE, f, 0);
      vm.setMemoryRegion(1, Memslot.GUEST_MEMFD | Userfault.MEM_USERFAULT, LongModeGuest.DATA_BASE, size - LongModeGuest.DATA_BASE, f,
          LongModeGuest.DATA_BASE);
      LongModeGuest.load(vm.guestMemory());
      UserfaultBitmap b = uf.bitmap(vm, 1);
      b.setAll();
      try (Vcpu cpu = vm.createVcpu(0)) {
        LongModeGuest.start(cpu, LongModeGuest.DATA_BASE, pages, 7);
        for (long p = 0; p < pages; p++) {
          VcpuExit.MemoryFault mf = assertInstanceOf(VcpuExit.MemoryFault.class, cpu.run());
          assertEquals(LongModeGuest.DATA_BASE + p * PAGE, mf.gpa());
          assertEquals(Userfault.EXIT_FLAG_USERFAULT, mf.flags() & Userfault.EXIT_FLAG_USERFAULT);
          uf.installZero(vm, mf.gpa());
        }
        assertEquals(LongModeGuest.FILL_PORT, assertInstanceOf(VcpuExit.Io.class, cpu.run()).port());
        assertEquals(0, b.countSet());
        assertEquals(LongModeGuest.pattern(LongModeGuest.DATA_BASE + 3 * PAGE, 7), vm.guestMemory().loadLong(LongModeGuest.DATA_BASE + 3 * PAGE));
      }
    }
  }
}
