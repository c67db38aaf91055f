package dev.gmem.examples.bench;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.VmType;
import dev.gmem.arch.pkvm.MemoryCallService;
import dev.gmem.arch.pkvm.PkvmHypercalls;
import java.util.concurrent.TimeUnit;
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
 * <b>pKVM guest-initiated conversion</b>: one page shared and unshared by the guest — MEM_SHARE
 * through the software vCPU, checked by the hypervisor model, the exit served by the VMM with
 * {@code setShareability(SHARED)}, the guest's result; then MEM_UNSHARE the same way to PRIVATE,
 * the host mapping zapped before the hypervisor's commit. Baseline: the same two conversions of one
 * page of a SW_PROTECTED file of the same shape (private, page 0 faulted by the guest, a host
 * mapping), issued by the VMM directly ({@code setShareability} SHARED then PRIVATE): the conversion engine's work without the guest's
 * protocol. Both files are allocated, bound to a memslot and mapped (accessors only). Target: the
 * round trip ≤ 2× the plain conversions.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(value = BenchDefaults.FORKS, jvmArgsAppend = BenchDefaults.NATIVE_ACCESS)
@Warmup(iterations = BenchDefaults.WARMUP_ITERATIONS, time = BenchDefaults.ITERATION_SECONDS)
@Measurement(iterations = BenchDefaults.MEASUREMENT_ITERATIONS, time = BenchDefaults.ITERATION_SECONDS)
public class PkvmBench {
  static final long PAGE = BenchDefaults.PAGE;
  static final long GPA = 0x10_0000;
  static final long PAGES = 16;

  /** A protected VM whose guest owns page 0 (donated at its first private write). */
  @State(Scope.Thread)
  public static class Guest {
    @Param({"kvm", "memfd"})
    public String backend;

    GmemFixture gmem;
    HostMapping mapping;
    SoftwareVcpu cpu;

    @Setup(Level.Trial)
    public void open() {
      gmem = GmemFixture.open(backend, PAGES * PAGE, VmType.PKVM, GmemFlags.MMAP);
      gmem.vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, PAGES * PAGE, gmem.file, 0);
      gmem.file.allocate(0, PAGES * PAGE);
      mapping = gmem.file.map();
      cpu = gmem.vm.softwareVcpu();
      cpu.writeLong(GPA, 0, true);
    }

    @TearDown(Level.Trial)
    public void close() {
      mapping.close();
      gmem.close();
    }
  }

  /** A SW_PROTECTED file of the same shape: private, page 0 faulted by the guest. */
  @State(Scope.Thread)
  public static class Plain {
    @Param({"kvm", "memfd"})
    public String backend;

    GmemFixture gmem;
    HostMapping mapping;

    @Setup(Level.Trial)
    public void open() {
      gmem = GmemFixture.open(backend, PAGES * PAGE, VmType.SW_PROTECTED, GmemFlags.MMAP);
      gmem.vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, PAGES * PAGE, gmem.file, 0);
      gmem.file.allocate(0, PAGES * PAGE);
      mapping = gmem.file.map();
      gmem.vm.softwareVcpu().writeLong(GPA, 0, true);
    }

    @TearDown(Level.Trial)
    public void close() {
      mapping.close();
      gmem.close();
    }
  }

  @Benchmark
  @Paired(baseline = "swProtectedRoundTrip", maxRatio = 2)
  public long guestShareUnshare(Guest s) {
    long shared = MemoryCallService.serve(s.gmem.vm, s.cpu.hypercall(PkvmHypercalls.MEM_SHARE, GPA));
    long unshared = MemoryCallService.serve(s.gmem.vm, s.cpu.hypercall(PkvmHypercalls.MEM_UNSHARE, GPA));
    if ((shared | unshared) != PkvmHypercalls.SUCCESS) {
      throw new IllegalStateException("the guest's round trip failed: " + shared + ", " + unshared);
    }
    return shared + unshared;
  }

  @Benchmark
  public long swProtectedRoundTrip(Plain s) {
    s.gmem.file.setShareability(0, PAGE, Shareability.SHARED);
    s.gmem.file.setShareability(0, PAGE, Shareability.PRIVATE);
    return s.gmem.file.shareabilitySequence();
  }
}
