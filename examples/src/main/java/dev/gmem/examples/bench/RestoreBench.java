package dev.gmem.examples.bench;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.examples.guest.LongModeGuest;
import dev.gmem.userfault.snapshot.LazyRestore;
import dev.gmem.userfault.snapshot.Snapshot;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * <b>Restore of a guest that touches 256 MiB</b> (issue 13). Untimed, once per trial: a real KVM
 * vCPU runs {@link LongModeGuest}'s fill pass over 256 MiB (65,536 pages) and halts, and
 * {@code Snapshot.write} saves VM and vCPU to a temporary directory (in the page cache from then on).
 *
 * <p>{@code lazyRestore}, per restore: {@link LazyRestore#start} (VM, files, memslots under
 * USERFAULT with every bit set, the vCPU's registers; the page-table slot copied in whole), the
 * guest's second pass — which reads every page and sums it, each missing page a USERFAULT exit
 * served on demand while the background fill streams the rest — its sum checked, then the wait for
 * full residency. Timed to full residency. Secondary results, per restore:
 * {@code firstInstructionMs} (start until the vCPU may enter the guest), {@code guestDoneMs} (until
 * the guest reported its sum), {@code fullResidencyMs} and {@code demandFaults}. {@code prefetch}
 * false: no hints; true: the working set recorded by an untimed restore in the trial setup is
 * hinted to the source first. Both runs are reported.
 *
 * <p>Baseline {@code eagerRestore}: the same VM, files and memslots, the whole image read into guest
 * memory before the vCPU may enter, then the same second pass; its first instruction comes after
 * the copy. Information only: the ratio is lazy's full residency over the eager copy-then-run.
 */
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 1, jvmArgsAppend = BenchDefaults.NATIVE_ACCESS)
@Warmup(iterations = 1)
@Measurement(iterations = 3)
public class RestoreBench {
  static final long PAGES = (256L << 20) / LongModeGuest.PAGE;
  static final long SEED = 0x5eed;

  @State(Scope.Benchmark)
  public static class Snap {
    @Param({"false", "true"})
    public boolean prefetch;

    Path dir;
    Snapshot snapshot;
    GmemRuntime rt;

    @Setup(Level.Trial)
    public void take() throws IOException, InterruptedException {
      dir = Files.createTempDirectory("gmem-restore-bench");
      try (GmemRuntime src = runtime()) {
        Vm vm = src.createVm(VmType.DEFAULT);
        long size = LongModeGuest.memorySize(PAGES);
        GuestMemFile f = vm.createGuestMemFile(size, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, LongModeGuest.DATA_BASE, f, 0);
        vm.setMemoryRegion(1, Memslot.GUEST_MEMFD, LongModeGuest.DATA_BASE, size - LongModeGuest.DATA_BASE, f, LongModeGuest.DATA_BASE);
        LongModeGuest.load(vm.guestMemory());
        try (Vcpu cpu = vm.createVcpu(0)) {
          LongModeGuest.start(cpu, LongModeGuest.DATA_BASE, PAGES, SEED);
          expectPort(cpu.run(), LongModeGuest.FILL_PORT);
          if (!(cpu.run() instanceof VcpuExit.Hlt)) {
            throw new IllegalStateException("the guest did not halt after its fill pass");
          }
          snapshot = Snapshot.write(vm, cpu, dir);
        }
      }
      rt = runtime();
      if (prefetch) {
        try (LazyRestore r = LazyRestore.start(rt, snapshot, false, true)) {
          finish(r);
          r.recordWorkingSet();
        }
      }
    }

    @TearDown(Level.Trial)
    public void remove() throws IOException {
      rt.close();
      try (Stream<Path> files = Files.list(dir)) {
        for (Path p : (Iterable<Path>) files::iterator) {
          Files.delete(p);
        }
      }
      Files.delete(dir);
    }
  }

  /** Per restore (one per iteration: single shot). */
  @AuxCounters(AuxCounters.Type.EVENTS)
  @State(Scope.Thread)
  public static class Timeline {
    public double firstInstructionMs;
    public double guestDoneMs;
    public double fullResidencyMs;
    public double demandFaults;
  }

  static GmemRuntime runtime() {
    return GmemRuntime.builder().property("gmem.backend", "kvm").build();
  }

  static void expectPort(VcpuExit exit, int port) {
    if (!(exit instanceof VcpuExit.Io io) || io.port() != port) {
      throw new IllegalStateException("expected an exit on port 0x" + Integer.toHexString(port) + ", got " + exit);
    }
  }

  /** The second pass to its sum (checked), then full residency. */
  static void finish(LazyRestore r) throws InterruptedException {
    expectPort(r.run(), LongModeGuest.SUM_PORT);
    checkSum(r.vcpu());
    awaitResidency(r);
  }

  static void awaitResidency(LazyRestore r) throws InterruptedException {
    while (!r.server().complete()) {
      if (r.server().paused()) {
        throw new IllegalStateException(r.server().progress());
      }
      Thread.sleep(1);
    }
  }

  static void checkSum(Vcpu cpu) {
    long want = LongModeGuest.expectedSum(LongModeGuest.DATA_BASE, PAGES, SEED);
    if (cpu.registers().rdx() != want) {
      throw new IllegalStateException("restored memory differs: sum " + Long.toHexString(cpu.registers().rdx()) + ", want " + Long.toHexString(want));
    }
  }

  @Benchmark
  @Paired(baseline = "eagerRestore")
  public long lazyRestore(Snap s, Timeline t) throws Exception {
    long t0 = System.nanoTime();
    try (LazyRestore r = LazyRestore.start(s.rt, s.snapshot, s.prefetch, true)) {
      long runnable = System.nanoTime();
      expectPort(r.run(), LongModeGuest.SUM_PORT);
      long done = System.nanoTime();
      checkSum(r.vcpu());
      awaitResidency(r);
      long resident = System.nanoTime();
      t.firstInstructionMs = (runnable - t0) / 1e6;
      t.guestDoneMs = (done - t0) / 1e6;
      t.fullResidencyMs = (resident - t0) / 1e6;
      t.demandFaults = r.server().demandOrder().size();
      return r.server().residentPages();
    }
  }

  @Benchmark
  public long eagerRestore(Snap s, Timeline t) throws Exception {
    long t0 = System.nanoTime();
    Snapshot snap = s.snapshot;
    Vm vm = s.rt.createVm(snap.type());
    try {
      Snapshot.FileMeta fm = snap.files().get(0);
      GuestMemFile f = vm.createGuestMemFile(fm.size(), fm.flags());
      for (Snapshot.SlotMeta m : snap.slots()) {
        vm.setMemoryRegion(m.slot(), m.flags(), m.gpa(), m.size(), f, m.offset());
      }
      ByteBuffer chunk = ByteBuffer.allocate(1 << 20);
      long size = fm.size();
      try (FileChannel img = FileChannel.open(snap.dir().resolve("memory.img"), StandardOpenOption.READ)) {
        for (long off = 0; off < size; off += chunk.capacity()) {
          chunk.clear();
          while (chunk.hasRemaining() && img.read(chunk, off + chunk.position()) > 0) {
            // fill the chunk
          }
          vm.guestMemory().write(off, chunk.array(), 0, chunk.position());
        }
      }
      try (Vcpu cpu = vm.createVcpu(0)) {
        cpu.setSpecialRegisters(snap.specialRegisters());
        cpu.setRegisters(snap.registers());
        long runnable = System.nanoTime();
        expectPort(cpu.run(), LongModeGuest.SUM_PORT);
        long done = System.nanoTime();
        checkSum(cpu);
        t.firstInstructionMs = (runnable - t0) / 1e6;
        t.guestDoneMs = (done - t0) / 1e6;
        t.fullResidencyMs = (runnable - t0) / 1e6;
        t.demandFaults = 0;
        return size;
      }
    } finally {
      vm.close();
    }
  }
}
