package dev.gmem.examples.bench;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.MapFlags;
import dev.gmem.api.Memslot;
import dev.gmem.api.Prot;
import dev.gmem.api.Registers;
import dev.gmem.api.Segment;
import dev.gmem.api.SpecialRegisters;
import dev.gmem.api.Vcpu;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Kvm;
import dev.gmem.core.sys.KvmStructs;
import dev.gmem.core.sys.Mapping;
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
 * <b>Intra-host migration switch-over</b>: what runs between a guest's last exit on VM A and its
 * first {@code KVM_RUN} on VM B, for 64 MiB, 1 GiB and 8 GiB of (sparse) guest memory. Each
 * invocation migrates once; the untimed per-invocation setup builds a fresh A (a DEFAULT VM with a
 * {@code MMAP|INIT_SHARED} file of {@code size} bound at GPA 0 and a real-mode vCPU) and a fresh B
 * with a vCPU; the teardown checks that B's vCPU has A's registers. kvm backend only.
 *
 * <ul>
 *   <li>{@code gmemSwitchOver}: A's registers out ({@code KVM_GET_REGS}, {@code KVM_GET_SREGS}),
 *       {@link Vm#moveEncryptionContextFrom B.moveEncryptionContextFrom(A)} — type, busy and
 *       pairwise memslot checks, the arch's step, the commit under the moved inode's invalidate
 *       lock and both VMs' vCPU gates — and the registers into B's vCPU. B linked A's file and bound
 *       the same layout in the setup, as a VMM builds the destination while the guest still runs.
 *       Target: ≤ 1 ms at every size: the move is O(memslots), not O(bytes).
 *       Baseline {@code rawSwitchOver}: the four register ioctls alone, through the JNR binding,
 *       from a raw vCPU of a raw VM over a real guest_memfd to a raw vCPU of a fresh VM whose
 *       memslot ({@code KVM_SET_USER_MEMORY_REGION2} over the same mapping) was set up untimed.</li>
 *   <li>{@code gmemLinkBindSwitchOver}, for information: the same plus building B's memory —
 *       {@link Vm#linkGuestMemFile link} and {@link Vm#setMemoryRegion bind} — beside
 *       {@code rawBindSwitchOver}: {@code KVM_SET_USER_MEMORY_REGION2} plus the register ioctls. On
 *       this host the kernel's memslot setup is O(bytes) (per-page metadata under shadow paging),
 *       for gmem and raw alike; that is why a VMM binds ahead.</li>
 * </ul>
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(value = BenchDefaults.FORKS, jvmArgsAppend = BenchDefaults.NATIVE_ACCESS)
@Warmup(iterations = BenchDefaults.WARMUP_ITERATIONS, time = BenchDefaults.ITERATION_SECONDS)
@Measurement(iterations = BenchDefaults.MEASUREMENT_ITERATIONS, time = BenchDefaults.ITERATION_SECONDS)
public class MigrationBench {
  static final long CODE = 0x1000;

  /** gmem's side: a runtime for the trial, A and B fresh for every invocation. */
  @State(Scope.Thread)
  public abstract static class GmemSide {
    @Param({"kvm"})
    public String backend;

    @Param({"67108864", "1073741824", "8589934592"})
    public long size;

    GmemRuntime runtime;
    Vm a;
    GuestMemFile fa;
    Vcpu va;
    Vm b;
    GuestMemFile fb;
    Vcpu vb;

    @Setup(Level.Trial)
    public void open() {
      runtime = GmemRuntime.builder().property("gmem.backend", backend).build();
      if (!runtime.backend().name().equals("kvm")) {
        throw new IllegalStateException("the switch-over moves real vCPUs: it needs the kvm backend, not " + runtime.backend().name());
      }
    }

    @Setup(Level.Invocation)
    public void build() {
      a = runtime.createVm(VmType.DEFAULT);
      fa = a.createGuestMemFile(size, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      a.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, size, fa, 0);
      va = a.createVcpu(0);
      va.setSpecialRegisters(va.specialRegisters().withCodeSegment(Segment.realMode(0, true)).withDataSegments(Segment.realMode(0, false)));
      va.setRegisters(Registers.initial().withRip(CODE));
      b = runtime.createVm(VmType.DEFAULT);
      vb = b.createVcpu(0);
      if (bindsAhead()) {
        linkAndBind();
      }
    }

    abstract boolean bindsAhead();

    void linkAndBind() {
      fb = b.linkGuestMemFile(fa, 0);
      b.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, size, fb, 0);
    }

    void switchOver() {
      Registers regs = va.registers();
      SpecialRegisters sregs = va.specialRegisters();
      b.moveEncryptionContextFrom(a);
      vb.setSpecialRegisters(sregs);
      vb.setRegisters(regs);
    }

    @TearDown(Level.Invocation)
    public void check() {
      RawMemory.expect("rip of the destination's vCPU", CODE, vb.registers().rip());
      vb.close();
      va.close();
      b.close();
      a.close();
      fb.close();
      fa.close();
    }

    @TearDown(Level.Trial)
    public void close() {
      runtime.close();
    }
  }

  /** B linked and bound before the switch-over. */
  @State(Scope.Thread)
  public static class Prepared extends GmemSide {
    @Override
    boolean bindsAhead() {
      return true;
    }
  }

  /** B with nothing bound: the switch-over builds its memory too. */
  @State(Scope.Thread)
  public static class Unprepared extends GmemSide {
    @Override
    boolean bindsAhead() {
      return false;
    }
  }

  /** The raw side: A a raw VM over a real guest_memfd, B a fresh raw VM, both with one raw vCPU. */
  @State(Scope.Thread)
  public abstract static class RawSide {
    @Param({"kvm"})
    public String backend;

    @Param({"67108864", "1073741824", "8589934592"})
    public long size;

    final Kvm kvm = new Kvm(RawMemory.SYS);
    Fd device;
    Fd vmA;
    Fd gmem;
    Mapping mapping;
    Fd vcpuA;
    Fd vmB;
    Fd vcpuB;
    KvmStructs.Regs regs;
    KvmStructs.Sregs sregs;

    @Setup(Level.Trial)
    public void open() {
      if (!backend.equals("kvm")) {
        throw new IllegalStateException("the raw switch-over needs /dev/kvm, not backend " + backend);
      }
      device = kvm.openDevice();
      regs = KvmStructs.allocate(RawMemory.SYS, new KvmStructs.Regs(RawMemory.SYS.runtime()));
      sregs = KvmStructs.allocate(RawMemory.SYS, new KvmStructs.Sregs(RawMemory.SYS.runtime()));
    }

    @Setup(Level.Invocation)
    public void build() {
      vmA = kvm.createVm(device, VmType.DEFAULT.kvmType());
      gmem = RawMemory.kvmBackendMemory(kvm, vmA, size);
      mapping = new Mapping(RawMemory.SYS, RawMemory.SYS.mmap(0, size, Prot.READ_WRITE, MapFlags.SHARED, gmem.get(), 0), size);
      RawMemory.bindKvmBackendMemory(kvm, vmA, 0, 0, size, mapping.address(), gmem, 0);
      vcpuA = kvm.createVcpu(vmA, 0);
      kvm.getRegs(vcpuA, regs);
      regs.rip.set(CODE);
      kvm.setRegs(vcpuA, regs);
      vmB = kvm.createVm(device, VmType.DEFAULT.kvmType());
      vcpuB = kvm.createVcpu(vmB, 0);
      if (bindsAhead()) {
        bind();
      }
    }

    abstract boolean bindsAhead();

    /** B's memslot: the same memory as plain user memory, as gmem binds a linked file on this kernel. */
    void bind() {
      kvm.setUserMemoryRegion2(vmB, 0, 0, 0, size, mapping.address(), 0, 0);
    }

    void switchOver() {
      kvm.getRegs(vcpuA, regs);
      kvm.getSregs(vcpuA, sregs);
      kvm.setSregs(vcpuB, sregs);
      kvm.setRegs(vcpuB, regs);
    }

    @TearDown(Level.Invocation)
    public void check() {
      kvm.getRegs(vcpuB, regs);
      RawMemory.expect("rip of the destination's vCPU", CODE, regs.rip.get());
      vcpuB.close();
      vmB.close();
      vcpuA.close();
      mapping.close();
      gmem.close();
      vmA.close();
    }

    @TearDown(Level.Trial)
    public void close() {
      device.close();
    }
  }

  /** B's memslot set up before the switch-over. */
  @State(Scope.Thread)
  public static class RawPrepared extends RawSide {
    @Override
    boolean bindsAhead() {
      return true;
    }
  }

  /** B's memslot set up during the switch-over. */
  @State(Scope.Thread)
  public static class RawUnprepared extends RawSide {
    @Override
    boolean bindsAhead() {
      return false;
    }
  }

  @Benchmark
  @Paired(baseline = "rawSwitchOver", maxNanos = 1_000_000)
  public void gmemSwitchOver(Prepared s) {
    s.switchOver();
  }

  @Benchmark
  public void rawSwitchOver(RawPrepared s) {
    s.switchOver();
  }

  @Benchmark
  @Paired(baseline = "rawBindSwitchOver")
  public void gmemLinkBindSwitchOver(Unprepared s) {
    s.linkAndBind();
    s.switchOver();
  }

  @Benchmark
  public void rawBindSwitchOver(RawUnprepared s) {
    s.bind();
    s.switchOver();
  }
}
