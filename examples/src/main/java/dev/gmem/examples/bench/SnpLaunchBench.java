package dev.gmem.examples.bench;

import static dev.gmem.examples.bench.BenchDefaults.PAGE;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.arch.snp.PageType;
import dev.gmem.arch.snp.SnpArch;
import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
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
import org.openjdk.jmh.infra.Blackhole;

/**
 * <b>SNP launch update</b>: {@code SNP_LAUNCH_UPDATE} of NORMAL pages with measurement, per 4 KiB
 * page, on an SNP VM (gmem-arch-snp).
 *
 * <p>gmem: {@code Vm.populate(gpa, image, PAGES, NORMAL)} — memslot lookup and checks, the
 * invalidate lock, per page the folio (a real page of the backend's memory), the arch's
 * post-populate callback (copy of the 4 KiB, SHA-384 of the placed page, SHA-384 of the 112-byte
 * PAGE_INFO that extends the launch digest, the RMP entry) and the prepared mark.
 *
 * <p>Baseline: SHA-384 of each 4 KiB page of the same image alone ({@link MessageDigest} on the
 * heap array), the floor: the firmware's measurement cannot cost less than hashing the page once.
 * The ratio says what populating and extending the digest add to that hash. The untimed
 * per-invocation setup punches the file, so every page is populated afresh (the VM stays in its
 * launch phase).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(value = BenchDefaults.FORKS, jvmArgsAppend = BenchDefaults.NATIVE_ACCESS)
@Warmup(iterations = BenchDefaults.WARMUP_ITERATIONS, time = BenchDefaults.ITERATION_SECONDS)
@Measurement(iterations = BenchDefaults.MEASUREMENT_ITERATIONS, time = BenchDefaults.ITERATION_SECONDS)
public class SnpLaunchBench {
  static final int PAGES = 256;
  static final long SIZE = PAGES * PAGE;
  static final long GPA = 0x100_0000;

  static byte[] image() {
    byte[] b = new byte[(int) SIZE];
    for (int i = 0; i < b.length; i++) {
      b[i] = (byte) (i * 31 + (i >>> 12));
    }
    return b;
  }

  /** An SNP VM in its launch phase with one private file bound at {@link #GPA}. */
  @State(Scope.Thread)
  public static class GmemSide {
    @Param({"kvm"})
    public String backend;

    GmemFixture gmem;
    Vm vm;
    GuestMemFile file;
    SnpArch snp;
    ByteBuffer image;

    @Setup(Level.Trial)
    public void open() {
      gmem = GmemFixture.open(backend, SIZE, VmType.SNP, GmemFlags.MMAP);
      vm = gmem.vm;
      file = gmem.file;
      snp = vm.arch(SnpArch.class).orElseThrow();
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, SIZE, file, 0);
      image = ByteBuffer.wrap(image());
    }

    @Setup(Level.Invocation)
    public void fresh() {
      file.punchHole(0, SIZE);
      RawMemory.expect("pages gmem holds before populating", 0, file.inode().allocatedPages());
      RawMemory.expect("assigned pages before populating", 0, snp.assignedPages());
      image.clear();
    }

    @TearDown(Level.Trial)
    public void close() {
      gmem.close();
    }
  }

  @State(Scope.Thread)
  public static class HashSide {
    byte[] image;
    MessageDigest sha384;

    @Setup(Level.Trial)
    public void open() throws NoSuchAlgorithmException {
      image = image();
      sha384 = MessageDigest.getInstance("SHA-384");
    }
  }

  @Benchmark
  @OperationsPerInvocation(PAGES)
  @Paired(baseline = "sha384Of4k", maxRatio = 1.5)
  public long gmemLaunchUpdate4k(GmemSide s) {
    long done = s.vm.populate(GPA, s.image, PAGES, PageType.NORMAL.value());
    if (done != PAGES) {
      throw new IllegalStateException("populated " + done + " of " + PAGES);
    }
    return done;
  }

  @Benchmark
  @OperationsPerInvocation(PAGES)
  public void sha384Of4k(HashSide s, Blackhole bh) {
    MessageDigest d = s.sha384;
    byte[] image = s.image;
    for (int off = 0; off < image.length; off += (int) PAGE) {
      d.update(image, off, (int) PAGE);
      bh.consume(d.digest());
    }
  }
}
