package dev.gmem.examples.bench;

import com.google.common.base.Supplier;
import com.google.common.base.Suppliers;
import dev.gmem.api.Fallocate;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.MapFlags;
import dev.gmem.api.Prot;
import dev.gmem.api.VmType;
import dev.gmem.core.host.HostProbe;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Kvm;
import dev.gmem.core.sys.Sys;
import dev.gmem.core.sys.libc.LibC;

/**
 * The baseline side of a pair: the bare kernel object gmem's backend stands on, with no gmem code
 * in between. {@code kvm}: a real guest_memfd made by {@code KVM_CREATE_GUEST_MEMFD} on a real VM
 * fd with {@code MMAP|INIT_SHARED} (what gmem's kvm backend creates) — or, on a kernel without
 * guest_memfd, a memfd, which is what gmem's kvm backend then creates ({@link #kernelGuestMemfd});
 * {@code memfd}: a memfd truncated to the size (what gmem's memfd backend creates). Mapped
 * {@code MAP_SHARED} read-write.
 */
final class RawMemory implements AutoCloseable {
  static final Sys SYS = Sys.load();

  private final Fd device;
  private final Fd vm;
  private final Fd memory;
  final long size;
  /** The fd number, read once so the measured loops do not go through {@link Fd#get()}. */
  final int fd;
  /** Mappings handed out and not yet unmapped: {@link #close()} unmaps them, so teardowns need not. */
  private final java.util.Set<Long> mappings = new java.util.HashSet<>();

  private RawMemory(Fd device, Fd vm, Fd memory, long size) {
    this.device = device;
    this.vm = vm;
    this.memory = memory;
    this.size = size;
    this.fd = memory.get();
  }

  /** The runtime's probe with the kvm backend's rule (BackendSelector.realGuestMemfd, not exported here), asked once. */
  private static final Supplier<Boolean> KERNEL_GUEST_MEMFD = Suppliers.memoize(
      () -> new HostProbe(SYS, new Kvm(SYS)).probe().guestMemfdSupports(GmemFlags.MMAP | GmemFlags.INIT_SHARED));

  /**
   * Whether the kernel has the guest_memfd gmem's kvm backend uses (mmap-able, starting shared);
   * where it has none, that backend's memory is a memfd bound as plain user memory, and so is the
   * baseline's.
   */
  static boolean kernelGuestMemfd() {
    return KERNEL_GUEST_MEMFD.get();
  }

  /** The memory gmem's kvm backend gives a VM's inode of {@code size} bytes, made raw: see {@link #kernelGuestMemfd}. */
  static Fd kvmBackendMemory(Kvm kvm, Fd vm, long size) {
    return kernelGuestMemfd() ? kvm.createGuestMemfd(vm, size, GmemFlags.MMAP | GmemFlags.INIT_SHARED) : memfd(size);
  }

  /**
   * Binds {@code memory} (from {@link #kvmBackendMemory}) at {@code [gpa, gpa+size)} as gmem's kvm
   * backend does: a guest_memfd slot at its mapping {@code uaddr}, or plain user memory there.
   */
  static void bindKvmBackendMemory(Kvm kvm, Fd vm, int slot, long gpa, long size, long uaddr, Fd memory, long offset) {
    boolean gmem = kernelGuestMemfd();
    kvm.setUserMemoryRegion2(vm, slot, gmem ? Kvm.MEM_GUEST_MEMFD : 0, gpa, size, uaddr, gmem ? memory.get() : 0, gmem ? offset : 0);
  }

  private static Fd memfd(long size) {
    Fd memory = new Fd(SYS, SYS.memfdCreate("gmem-bench-raw", Sys.MFD_CLOEXEC), "memfd");
    try {
      SYS.ftruncate(memory.get(), size);
    } catch (RuntimeException e) {
      memory.close();
      throw e;
    }
    return memory;
  }

  static RawMemory open(String backend, long size) {
    switch (backend) {
      case "kvm": {
        Kvm kvm = new Kvm(SYS);
        Fd device = kvm.openDevice();
        Fd vm = null;
        try {
          vm = kvm.createVm(device, VmType.DEFAULT.kvmType());
          return new RawMemory(device, vm, kvmBackendMemory(kvm, vm, size), size);
        } catch (RuntimeException e) {
          if (vm != null) {
            vm.close();
          }
          device.close();
          throw e;
        }
      }
      case "memfd":
        return new RawMemory(null, null, memfd(size), size);
      default:
        throw new IllegalArgumentException("unknown backend " + backend + " (kvm or memfd)");
    }
  }

  /**
   * A hugetlbfs memfd ({@code MFD_HUGETLB | log2 << MFD_HUGE_SHIFT}) truncated to {@code size}: what
   * gmem's hugetlb allocator backs a file with, without gmem. Mapping it {@code MAP_SHARED} reserves
   * its pages in the pool.
   */
  static RawMemory openHugetlb(int log2, long size) {
    Fd memory = new Fd(SYS, SYS.memfdCreate("gmem-bench-raw-hugetlb", Sys.MFD_CLOEXEC | Sys.MFD_HUGETLB | (log2 << Sys.MFD_HUGE_SHIFT)), "memfd");
    try {
      SYS.ftruncate(memory.get(), size);
    } catch (RuntimeException e) {
      memory.close();
      throw e;
    }
    return new RawMemory(null, null, memory, size);
  }

  static LibC libc() {
    return SYS.libc();
  }

  /** {@code mmap(NULL, size, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0)}. */
  long map() {
    long address = SYS.mmap(0, size, Prot.READ_WRITE, MapFlags.SHARED, fd, 0);
    mappings.add(address);
    return address;
  }

  void unmap(long address) {
    if (mappings.remove(address)) {
      SYS.munmap(address, size);
    }
  }

  /** {@code fallocate(KEEP_SIZE|PUNCH_HOLE)} over the whole file: every page becomes absent. */
  void punchAll() {
    SYS.fallocate(fd, Fallocate.KEEP_SIZE | Fallocate.PUNCH_HOLE, 0, size);
  }

  /** {@code fallocate(KEEP_SIZE)} over the whole file: every page allocated, none mapped. */
  void allocateAll() {
    SYS.fallocate(fd, Fallocate.KEEP_SIZE, 0, size);
  }

  /** Pages of {@code [address, address+length)} present in the file's page cache ({@code mincore}). */
  static int residentPages(long address, long length) {
    int n = 0;
    for (byte b : SYS.mincore(address, length)) {
      n += b & 1;
    }
    return n;
  }

  /**
   * Pages of {@code [0, length)} of a gmem file (its size at least) present in its page cache,
   * through a mapping of its own that goes again at once. A mapping the benchmark keeps would hand its raw view out on
   * {@code address()}, which maps the file a second time for good, and the measured work would then
   * include the kernel's for two mappings (a punch unmaps its page from each: ~0.5 µs more per
   * 4 KiB punch) where the raw side has one.
   */
  static int residentPages(GuestMemFile file, long length) {
    try (HostMapping check = file.map()) {
      return residentPages(check.address(), length);
    }
  }

  /** Fails the benchmark when the memory is not in the state the measurement assumes. */
  static void expect(String what, long expected, long actual) {
    if (expected != actual) {
      throw new IllegalStateException(what + ": expected " + expected + ", found " + actual);
    }
  }

  @Override
  public void close() {
    for (long address : java.util.List.copyOf(mappings)) {
      unmap(address);
    }
    memory.close();
    if (vm != null) {
      vm.close();
    }
    if (device != null) {
      device.close();
    }
  }
}
