package dev.gmem.examples.bench;

import static dev.gmem.examples.bench.BenchDefaults.PAGE;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestCall;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.arch.tdx.TdxAbi;
import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * <b>TDX</b> (gmem-arch-tdx; the TDX module is modelled, the memory real), on the kvm backend.
 *
 * <p><b>Populate with measurement</b>, per 4 KiB page: {@code Vm.populate(gpa, src, 256, MEASURE)}
 * of 1 MiB into a fresh TD (created untimed before each invocation) — per page the populate path
 * (invalidate lock, folio allocation, the slot's window), {@code TDH.MEM.PAGE.ADD} (the copy, the
 * S-EPT/PAMT update, one 128-byte MRTD block) and 16 {@code TDH.MR.EXTEND}s (32 more blocks of
 * content plus 16 of headers). Baseline: SHA-384 of the same 4 KiB alone ({@code digest}: 32
 * blocks plus the padding block), the floor of any measured populate. The rule hashes 49 blocks
 * where the floor hashes 33, so the hashing alone is ~1.48× (the floor's {@code digest} costs the
 * same per block as the running MRTD digest: it does no work beyond SHA-384 of the 4 KiB); the
 * target 1.5 leaves the rest of the path almost nothing (~0.3 µs per page). That rest includes
 * allocating each page, as KVM's populate does (the TD is fresh): on a nested host such as this
 * project's, the kernel's first-touch fault of a fresh page alone costs more than that.
 *
 * <p><b>Why 1.5 is out of reach</b> (2-CPU nested host, loaded: min of 300–400 interleaved runs).
 * One 49-block update against {@code digest(4 KiB)}: 1.47–1.65×, the arithmetic's 1.485 give or
 * take noise; the rest of the path, a populate without measurement (PAGE.ADD's one block, the
 * allocation and first-touch fault, the copy, S-EPT/PAMT, records): 3.1–4.2 µs per page against a
 * floor of 8–11 µs, i.e. another 0.3–0.5×; the measured populate: 1.84–2.10×. The hashing is one
 * SHA-384 chain (each block needs the state the previous one left), so it cannot be split, only
 * moved: hashing on a second thread while the populating thread prepares the next page (the TDX
 * module is modelled, so the same updates in the same order can run anywhere) was built and
 * measured — best case 1.59–1.77× against 1.84–2.10× inline, but median 2.5–5× (its thread
 * hashed at 20–25 µs a page where the same work inline takes ~14–20: the hand-off's cache traffic
 * and a second CPU that, on this host, is not spare), so it was not kept. Even an ideal hand-off
 * leaves that thread's own 49 blocks at ~1.48–1.5× the floor.
 *
 * <p><b>MapGPA of 5 MiB</b>, end to end: the guest's {@code TDG.VP.VMCALL<MapGPA>} to shared
 * through the software vCPU, the three {@code KVM_HC_MAP_GPA_RANGE} exits (2, 2, 1 MiB) each
 * completed by the VMM with {@code setShareability}. Baseline: the three bare conversions of the
 * same ranges. Both start from a private range (restored untimed). For information (smoke).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(value = BenchDefaults.FORKS, jvmArgsAppend = BenchDefaults.NATIVE_ACCESS)
@Warmup(iterations = 2, time = BenchDefaults.ITERATION_SECONDS)
@Measurement(iterations = 3, time = BenchDefaults.ITERATION_SECONDS)
public class TdxBench {
  static final int POPULATE_PAGES = 256;
  static final long MIB = 1L << 20;

  /** A runtime on the kvm backend; a fresh, empty TD before each populate. */
  @State(Scope.Thread)
  public static class Build {
    GmemRuntime rt;
    Vm vm;
    GuestMemFile file;
    ByteBuffer image;

    @Setup(Level.Trial)
    public void open() {
      rt = GmemRuntime.builder().property("gmem.backend", "kvm").build();
      byte[] b = new byte[POPULATE_PAGES * (int) PAGE];
      new Random(1).nextBytes(b);
      image = ByteBuffer.wrap(b);
    }

    @Setup(Level.Invocation)
    public void td() {
      vm = rt.createVm(VmType.TDX);
      file = vm.createGuestMemFile(POPULATE_PAGES * PAGE, GmemFlags.MMAP);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, POPULATE_PAGES * PAGE, file, 0);
      image.clear();
    }

    @TearDown(Level.Invocation)
    public void drop() {
      file.close();
      vm.close();
    }

    @TearDown(Level.Trial)
    public void close() {
      rt.close();
    }
  }

  /** One page of the same image and a SHA-384 engine. */
  @State(Scope.Thread)
  public static class Floor {
    byte[] page = new byte[(int) PAGE];
    MessageDigest sha;

    @Setup(Level.Trial)
    public void open() throws NoSuchAlgorithmException {
      new Random(1).nextBytes(page);
      sha = MessageDigest.getInstance("SHA-384");
    }
  }

  @Benchmark
  @OperationsPerInvocation(POPULATE_PAGES)
  @Paired(baseline = "sha384Of4k", maxRatio = 1.5)
  public long populateMeasured(Build s) {
    long done = s.vm.populate(0, s.image, POPULATE_PAGES, TdxAbi.MEASURE_MEMORY_REGION);
    if (done != POPULATE_PAGES) {
      throw new IllegalStateException("populated " + done + " of " + POPULATE_PAGES);
    }
    return done;
  }

  @Benchmark
  public byte[] sha384Of4k(Floor s) {
    return s.sha.digest(s.page);
  }

  /** A finalized TD with 8 MiB bound at GPA 0; [1 MiB, 6 MiB) private before each invocation. */
  @State(Scope.Thread)
  public static class Td {
    GmemRuntime rt;
    Vm vm;
    GuestMemFile file;

    @Setup(Level.Trial)
    public void open() {
      rt = GmemRuntime.builder().property("gmem.backend", "kvm").build();
      vm = rt.createVm(VmType.TDX);
      file = vm.createGuestMemFile(8 * MIB, GmemFlags.MMAP);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, 8 * MIB, file, 0);
      vm.finalizeLaunch();
    }

    @Setup(Level.Invocation)
    public void privateAgain() {
      file.setShareability(MIB, 5 * MIB, Shareability.PRIVATE);
    }

    @TearDown(Level.Trial)
    public void close() {
      file.close();
      vm.close();
      rt.close();
    }
  }

  @Benchmark
  @Paired(baseline = "threeConversions")
  public long mapGpa5MiB(Td s) {
    GuestCall call = s.vm.softwareVcpu().hypercall(TdxAbi.TDVMCALL_MAP_GPA, MIB | TdxAbi.SHARED_BIT, 5 * MIB);
    int exits = 0;
    for (VcpuExit.Hypercall exit; (exit = call.pendingExit()) != null; exits++) {
      s.file.setShareability(exit.gpa(), exit.npages() * PAGE, Shareability.SHARED);
      call.complete(0);
    }
    if (exits != 3 || call.result().value() != TdxAbi.TDVMCALL_STATUS_SUCCESS) {
      throw new IllegalStateException(exits + " exits, status " + call.result());
    }
    return exits;
  }

  @Benchmark
  public long threeConversions(Td s) {
    s.file.setShareability(MIB, 2 * MIB, Shareability.SHARED);
    s.file.setShareability(3 * MIB, 2 * MIB, Shareability.SHARED);
    s.file.setShareability(5 * MIB, MIB, Shareability.SHARED);
    return 3;
  }
}
