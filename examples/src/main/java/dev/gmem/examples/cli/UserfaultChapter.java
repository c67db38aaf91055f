package dev.gmem.examples.cli;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.examples.guest.LongModeGuest;
import dev.gmem.userfault.Userfault;
import dev.gmem.userfault.UserfaultBitmap;
import dev.gmem.userfault.snapshot.LazyRestore;
import dev.gmem.userfault.snapshot.Snapshot;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;

/**
 * {@code gmem demo}, KVM Userfault (gmem-userfault, real vCPUs of the kvm backend): a 64-bit guest
 * fills pages whose userfault bits are set, each first touch a USERFAULT exit the VMM resolves; a
 * punch makes a mapped page exit again; then the guest is snapshotted and lazily restored twice —
 * the second restore prefetching the first one's working set — and its sum over the restored
 * memory is the one it wrote.
 */
final class UserfaultChapter {
  private static final long PAGE = LongModeGuest.PAGE;
  private static final long PAGES = 1024;
  private static final long SEED = 0xfeed;

  private UserfaultChapter() {}

  static void run(PrintWriter out, GmemRuntime rt) {
    try {
      chapter(out, rt);
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  private static void chapter(PrintWriter out, GmemRuntime rt) throws IOException {
    out.printf("%nKVM Userfault (gmem-userfault)%n");
    Userfault uf = rt.feature(Userfault.class).orElse(null);
    if (uf == null || !rt.backend().name().equals("kvm")) {
      out.println("  needs the userfault feature and real vCPUs (kvm backend): not run on this backend");
      return;
    }
    out.printf("  kernel KVM_MEM_USERFAULT: %s -> %s%n", uf.kernelUserfaultProbe(),
        uf.kernelUserfault() ? "passed through to the kernel" : "gmem's stage-2 view");
    Path dir = Files.createTempDirectory("gmem-demo-userfault");
    try {
      Snapshot snap = fillUnderBits(out, rt, uf, dir);
      long firstDemand = restore(out, rt, snap, "first restore", false);
      long secondDemand = restore(out, rt, snap, "second restore, prefetching the first one's working set", true);
      out.printf("  demand faults: %d without prefetch, %d with%n", firstDemand, secondDemand);
    } finally {
      try (Stream<Path> files = Files.list(dir)) {
        for (Path p : (Iterable<Path>) files::iterator) {
          Files.delete(p);
        }
      }
      Files.delete(dir);
    }
  }

  private static Snapshot fillUnderBits(PrintWriter out, GmemRuntime rt, Userfault uf, Path dir) throws IOException {
    Vm vm = rt.createVm(VmType.DEFAULT);
    try {
      long size = LongModeGuest.memorySize(PAGES);
      long data = size - LongModeGuest.DATA_BASE;
      GuestMemFile f = vm.createGuestMemFile(size, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, LongModeGuest.DATA_BASE, f, 0); // page tables: KVM walks them itself
      vm.setMemoryRegion(1, Memslot.GUEST_MEMFD | Userfault.MEM_USERFAULT, LongModeGuest.DATA_BASE, data, f, LongModeGuest.DATA_BASE);
      LongModeGuest.load(vm.guestMemory());
      UserfaultBitmap bits = uf.bitmap(vm, 1);
      bits.setAll();
      try (Vcpu cpu = vm.createVcpu(0)) {
        LongModeGuest.start(cpu, LongModeGuest.DATA_BASE, PAGES, SEED);
        long exits = 0;
        VcpuExit exit;
        while ((exit = cpu.run()) instanceof VcpuExit.MemoryFault mf && (mf.flags() & Userfault.EXIT_FLAG_USERFAULT) != 0) {
          uf.installZero(vm, mf.gpa()); // the guest writes every page whole: a known-zero page is enough
          exits++;
        }
        out.printf("  64-bit guest filled %d pages under set bits: %d USERFAULT exits, then %s%n", PAGES, exits, exit);
        if (!(cpu.run() instanceof VcpuExit.Hlt)) {
          throw new IllegalStateException("the guest did not halt after its fill pass");
        }
        Snapshot snap = Snapshot.write(vm, cpu, dir);
        out.printf("  snapshot: %d pages, vCPU registers, memslots (the page-table slot restores whole)%n", snap.pages());
        f.punchHole(LongModeGuest.DATA_BASE, PAGE);
        bits.set(0);
        long again = 0;
        while ((exit = cpu.run()) instanceof VcpuExit.MemoryFault mf && (mf.flags() & Userfault.EXIT_FLAG_USERFAULT) != 0) {
          ByteBuffer page = ByteBuffer.allocate((int) PAGE).order(java.nio.ByteOrder.LITTLE_ENDIAN);
          page.putLong(0, LongModeGuest.pattern(mf.gpa(), SEED));
          uf.install(vm, mf.gpa(), page);
          again++;
        }
        out.printf("  page 0 punched, its bit set: the sum pass exits %d time(s) (a punch unmaps stage 2), sum %s%n", again,
            cpu.registers().rdx() == LongModeGuest.expectedSum(LongModeGuest.DATA_BASE, PAGES, SEED) ? "identical" : "DIFFERENT");
        return snap;
      }
    } finally {
      vm.close();
    }
  }

  private static long restore(PrintWriter out, GmemRuntime rt, Snapshot snap, String what, boolean prefetch) throws IOException {
    long t0 = System.nanoTime();
    try (LazyRestore r = LazyRestore.start(rt, snap, prefetch, false)) {
      long runnable = System.nanoTime();
      VcpuExit exit = r.run();
      long want = LongModeGuest.expectedSum(LongModeGuest.DATA_BASE, PAGES, SEED);
      boolean same = exit instanceof VcpuExit.Io io && io.port() == LongModeGuest.SUM_PORT && r.vcpu().registers().rdx() == want;
      long demand = r.server().demandOrder().size();
      out.printf("  %s: runnable after %.1f ms, guest sum %s after %.1f ms, %d demand faults%n", what, (runnable - t0) / 1e6,
          same ? "identical" : "DIFFERENT (" + exit + ")", (System.nanoTime() - t0) / 1e6, demand);
      if (!prefetch) {
        r.recordWorkingSet();
      }
      return demand;
    }
  }
}
