package dev.gmem.core.spi;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.FaultInterceptor;
import dev.gmem.api.spi.Feature;
import dev.gmem.api.spi.FeatureProvider;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.api.spi.GuestFault;
import dev.gmem.api.spi.HostMemory;
import dev.gmem.core.conformance.Backends;
import dev.gmem.core.convert.TestRuntimes;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * An interceptor that declares {@link FaultInterceptor#accessMemslotFlags} (as KVM Userfault does)
 * sees every access to an inode while a memslot with its flag binds it, and only first faults
 * otherwise: the rest take the lock-free path. Setting the flag late, creating a slot with it and
 * deleting that slot each switch it, with nothing in flight missed.
 */
class FlagScopedInterceptorTest {
  static final long PAGE = 4096;
  static final int FLAG = 1 << 3;

  /** Counts the accesses it sees; scoped to memslots with {@link #FLAG}. */
  public static final class Counting implements Feature, FaultInterceptor {
    final AtomicInteger host = new AtomicInteger();
    final AtomicInteger guest = new AtomicInteger();

    @Override
    public FaultInterceptor faultInterceptor() {
      return this;
    }

    @Override
    public int accessMemslotFlags() {
      return FLAG;
    }

    @Override
    public void hostFault(GmemPage page, boolean write) {
      host.incrementAndGet();
    }

    @Override
    public long guestFault(GuestFault fault) {
      guest.incrementAndGet();
      return 0;
    }
  }

  public static final class Provider implements FeatureProvider {
    @Override
    public String id() {
      return "flag-scoped-counting";
    }

    @Override
    public int memslotFlags() {
      return FLAG;
    }

    @Override
    public Feature create(HostMemory host) {
      return new Counting();
    }
  }

  static Stream<String> backends() {
    return Backends.names();
  }

  static GmemRuntime runtime(String backend) {
    return TestRuntimes.withProviders(backend, Map.of(FeatureProvider.class, List.of(Provider.class)), Map.of());
  }

  /** {@code n} host reads and {@code n} software-vCPU reads of page 1; how many each kind of access the interceptor saw. */
  static int[] access(Vm vm, HostMapping m, Counting c, int n) {
    int host0 = c.host.get();
    int guest0 = c.guest.get();
    for (int i = 0; i < n; i++) {
      assertEquals(0x77, m.getLong(PAGE));
      assertEquals(0x77, vm.softwareVcpu().readLong(0x1000 + PAGE, false));
    }
    return new int[] {c.host.get() - host0, c.guest.get() - guest0};
  }

  @ParameterizedTest
  @MethodSource("backends")
  void accessesOutsideFlaggedMemslotsTakeTheLockFreePathAndFlaggedOnesAreAllSeen(String backend) {
    try (GmemRuntime rt = runtime(backend)) {
      Counting c = (Counting) rt.feature(FaultInterceptor.class).orElseThrow();
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile f = vm.createGuestMemFile(4 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0x1000, 3 * PAGE, f, 0);
      try (HostMapping m = f.map()) {
        m.putLong(PAGE, 0x77);
        int[] seen = access(vm, m, c, 100);
        assertEquals(0, seen[0], "host reads after the first write: lock-free");
        assertEquals(1, seen[1], "the vCPU's first read faults, the rest are lock-free");

        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD | FLAG, 0x1000, 3 * PAGE, f, 0); // late toggle
        seen = access(vm, m, c, 100);
        assertEquals(100, seen[0], "with the flag set every host access is seen");
        assertEquals(100, seen[1], "and every vCPU access");

        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0x1000, 3 * PAGE, f, 0);
        seen = access(vm, m, c, 100);
        assertEquals(1, seen[0], "flag cleared: one fault, then lock-free again");
        assertEquals(1, seen[1]);

        vm.setMemoryRegion(1, Memslot.GUEST_MEMFD | FLAG, 0x10_0000, PAGE, f, 3 * PAGE); // another slot, same inode
        seen = access(vm, m, c, 10);
        assertEquals(10, seen[0], "a flagged slot over another part of the inode: the inode is seen whole");
        assertEquals(10, seen[1]);

        vm.setMemoryRegion(1, 0, 0x10_0000, 0, f, 3 * PAGE); // delete it
        seen = access(vm, m, c, 10);
        assertEquals(1, seen[0], "deleted: lock-free again after one fault");
      }
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aFlaggedSlotOfAnotherVmOverAFileOfItsOwnLeavesThisOneAlone(String backend) {
    try (GmemRuntime rt = runtime(backend)) {
      Counting c = (Counting) rt.feature(FaultInterceptor.class).orElseThrow();
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile f = vm.createGuestMemFile(4 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0x1000, 3 * PAGE, f, 0);
      Vm other = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile g = other.createGuestMemFile(PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      other.setMemoryRegion(0, Memslot.GUEST_MEMFD | FLAG, 0, PAGE, g, 0);
      try (HostMapping m = f.map()) {
        m.putLong(PAGE, 0x77);
        int[] seen = access(vm, m, c, 50);
        assertEquals(0, seen[0]);
        assertEquals(1, seen[1]);
      }
      other.close();
    }
  }
}
