package dev.gmem.core.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.Proxy;
import java.util.List;
import java.util.function.BiConsumer;
import java.util.stream.Stream;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The memslot binding table of kernel-uapi §4.5 ({@code KVM_SET_USER_MEMORY_REGION2} with
 * {@code KVM_MEM_GUEST_MEMFD}, {@code kvm_gmem_bind}) row by row against
 * {@link Vm#setMemoryRegion}, on each backend. Every failing call must leave the memslots as they
 * were. Each case gets a fresh VM with a 16-page file, as the observations in §4.5 used.
 */
class MemslotConformanceTest {
  static final long PAGE = 4096;
  static final long FILE_SIZE = 16 * PAGE;
  static final int GM = Memslot.GUEST_MEMFD;

  static Stream<String> backends() {
    return Backends.names();
  }

  private static void withVm(String backend, BiConsumer<Vm, GuestMemFile> test) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      try (GuestMemFile f = vm.createGuestMemFile(FILE_SIZE, GmemFlags.MMAP | GmemFlags.INIT_SHARED)) {
        test.accept(vm, f);
      }
    }
  }

  /** The call fails with {@code errno} and the VM's memslots are exactly what they were. */
  private static void expect(Vm vm, Errno errno, Executable call) {
    List<Memslot> before = vm.memslots();
    GmemException e = assertThrows(GmemException.class, call);
    assertEquals(errno, e.errno(), e.getMessage());
    assertEquals(before, vm.memslots(), "a failed call changes nothing");
  }

  @ParameterizedTest
  @MethodSource("backends")
  void closedOrMissingFileIsEbadf(String backend) {
    withVm(backend, (vm, f) -> {
      GuestMemFile closed = vm.createGuestMemFile(FILE_SIZE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      closed.close();
      expect(vm, Errno.EBADF, () -> vm.setMemoryRegion(0, GM, 0, PAGE, closed, 0));
      expect(vm, Errno.EBADF, () -> vm.setMemoryRegion(0, GM, 0, PAGE, null, 0));
      assertEquals(List.of(), vm.memslots());
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void otherVmsFileIsEinval(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      Vm other = rt.createVm(VmType.DEFAULT);
      GuestMemFile foreign = other.createGuestMemFile(FILE_SIZE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(0, GM, 0, PAGE, foreign, 0));
      other.setMemoryRegion(0, GM, 0, PAGE, foreign, 0); // its own VM may bind it
      assertEquals(1, other.memslots().size());
      assertEquals(List.of(), vm.memslots());
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void unalignedGpaSizeOrOffsetIsEinval(String backend) {
    withVm(backend, (vm, f) -> {
      for (long bad : new long[] {1, PAGE - 1, PAGE + 1, PAGE / 2}) {
        expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(0, GM, bad, PAGE, f, 0));
        expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(0, GM, 0, bad, f, 0));
        expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(0, GM, 0, PAGE, f, bad));
      }
      // set_memory_region_test: every unaligned offset 1..4095.
      for (long offset = 1; offset < PAGE; offset++) {
        long o = offset;
        expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(0, GM, 0, PAGE, f, o));
      }
      assertEquals(List.of(), vm.memslots());
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void bindingMayEndExactlyAtEofButNotBeyond(String backend) {
    withVm(backend, (vm, f) -> {
      expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(1, GM, 0, 4 * PAGE, f, 14 * PAGE));
      expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(1, GM, 0, FILE_SIZE + PAGE, f, 0));
      expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(1, GM, 0, PAGE, f, FILE_SIZE));
      expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(1, GM, 0, PAGE, f, -PAGE));
      Memslot m = vm.setMemoryRegion(1, GM, 0, 4 * PAGE, f, 12 * PAGE);
      assertEquals(new Memslot(1, GM, 0, 4 * PAGE, f, 12 * PAGE), m);
      assertEquals(List.of(m), vm.memslots());
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void fileRangeMayBeBoundOnlyOnce(String backend) {
    withVm(backend, (vm, f) -> {
      Memslot a = vm.setMemoryRegion(0, GM, 0, 4 * PAGE, f, 0);
      Memslot b = vm.setMemoryRegion(1, GM, 1L << 32, 4 * PAGE, f, 4 * PAGE); // adjacent file range: fine
      // Same range, different GPA: EINVAL (not EEXIST, which is for GPA overlap).
      expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(2, GM, 1L << 33, 4 * PAGE, f, 0));
      // Partially overlapping file ranges.
      expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(2, GM, 1L << 33, 4 * PAGE, f, 2 * PAGE));
      expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(2, GM, 1L << 33, PAGE, f, 7 * PAGE));
      expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(2, GM, 1L << 33, 16 * PAGE, f, 0));
      assertEquals(List.of(a, b), vm.memslots());
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void gpaOverlapIsEexist(String backend) {
    withVm(backend, (vm, f) -> {
      Memslot a = vm.setMemoryRegion(0, GM, 4 * PAGE, 4 * PAGE, f, 0);
      expect(vm, Errno.EEXIST, () -> vm.setMemoryRegion(1, GM, 4 * PAGE, 4 * PAGE, f, 8 * PAGE)); // same GPAs
      expect(vm, Errno.EEXIST, () -> vm.setMemoryRegion(1, GM, 7 * PAGE, 2 * PAGE, f, 8 * PAGE)); // tail
      expect(vm, Errno.EEXIST, () -> vm.setMemoryRegion(1, GM, 3 * PAGE, 2 * PAGE, f, 8 * PAGE)); // head
      expect(vm, Errno.EEXIST, () -> vm.setMemoryRegion(1, GM, 0, 12 * PAGE, f, 4 * PAGE)); // around
      // set_memory_region_test's case: GPA and file range both overlap; the GPA check comes first.
      expect(vm, Errno.EEXIST, () -> vm.setMemoryRegion(1, GM, 6 * PAGE, 4 * PAGE, f, 2 * PAGE));
      Memslot below = vm.setMemoryRegion(1, GM, 0, 4 * PAGE, f, 8 * PAGE); // touching is not overlapping
      assertEquals(List.of(a, below), vm.memslots());
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void invalidFlagCombinationsAreEinval(String backend) {
    withVm(backend, (vm, f) -> {
      expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(0, GM | Memslot.READONLY, 0, PAGE, f, 0));
      expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(0, GM | Memslot.LOG_DIRTY_PAGES, 0, PAGE, f, 0));
      for (int bit = 3; bit < 32; bit++) {
        int flags = GM | 1 << bit;
        expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(0, flags, 0, PAGE, f, 0));
      }
      assertEquals(List.of(), vm.memslots());
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void slotIdsStopAtMaxMemslots(String backend) {
    withVm(backend, (vm, f) -> {
      assertEquals(32764, vm.maxMemslots(), "KVM_CAP_NR_MEMSLOTS on x86");
      int last = vm.maxMemslots() - 1;
      expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(last + 1, GM, 0, PAGE, f, 0));
      expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(0xffff, GM, 0, PAGE, f, 0));
      Memslot m = vm.setMemoryRegion(last, GM, 0, PAGE, f, 0);
      assertEquals(List.of(m), vm.memslots());
      assertEquals(32763, m.slot());
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void addressSpacesFromTwoOnAreEinval(String backend) {
    withVm(backend, (vm, f) -> {
      for (int as : new int[] {2, 3, 0x7fff, 0xffff}) {
        expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(as << 16, GM, 0, PAGE, f, 0));
      }
      assertEquals(List.of(), vm.memslots());
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void boundSlotsAreImmutable(String backend) {
    withVm(backend, (vm, f) -> {
      Memslot m = vm.setMemoryRegion(3, GM, 4 * PAGE, 2 * PAGE, f, 0);
      expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(3, GM, 4 * PAGE, 2 * PAGE, f, 0)); // identical again
      expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(3, GM, 1L << 32, 2 * PAGE, f, 0)); // move
      expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(3, GM, 4 * PAGE, 4 * PAGE, f, 0)); // grow
      expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(3, GM, 4 * PAGE, 2 * PAGE, f, 8 * PAGE)); // other file range
      expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(3, GM | Memslot.LOG_DIRTY_PAGES, 4 * PAGE, 2 * PAGE, f, 0)); // add a flag
      expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(3, 0, 4 * PAGE, 2 * PAGE, f, 0)); // drop GUEST_MEMFD
      assertEquals(List.of(m), vm.memslots());
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void deletingAMissingSlotIsEinvalAndDeletingFreesTheFileRange(String backend) {
    withVm(backend, (vm, f) -> {
      expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(5, GM, 0, 0, f, 0));
      expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(5, 0, 0, 0, null, 0));
      Memslot m = vm.setMemoryRegion(5, GM, 0, 4 * PAGE, f, 4 * PAGE);
      expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(6, GM, 1L << 32, 4 * PAGE, f, 4 * PAGE));
      vm.setMemoryRegion(5, GM, 0, 0, f, 0);
      assertEquals(List.of(), vm.memslots());
      expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(5, GM, 0, 0, f, 0)); // already gone
      Memslot again = vm.setMemoryRegion(6, GM, 1L << 32, 4 * PAGE, f, 4 * PAGE); // same file range, new slot and GPA
      Memslot back = vm.setMemoryRegion(5, GM, 0, 4 * PAGE, f, 8 * PAGE); // the old id and GPA are free too
      assertEquals(List.of(back, again), vm.memslots());
      assertEquals(m.gpa(), back.gpa());
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void gpaWrapAndOversizedSlotsAreEinval(String backend) {
    withVm(backend, (vm, f) -> {
      expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(0, GM, -PAGE, 2 * PAGE, f, 0));
      expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(0, GM, -PAGE, PAGE, f, 0)); // ends at 2^64: wraps to 0
      // KVM_MEM_MAX_NR_PAGES = 2^31 - 1: 2^31 pages (8 TiB) are refused before the file is looked at.
      expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(0, GM, 0, 1L << 43, f, 0));
      expect(vm, Errno.EINVAL, () -> vm.setMemoryRegion(0, GM, 0, -PAGE, f, 0));
      assertEquals(List.of(), vm.memslots());
    });
  }

  /** {@code vm} with {@link Vm#memslotAt} left to the interface's default (a scan of {@code memslots()}). */
  private static Vm withDefaultMemslotAt(Vm vm) {
    return (Vm) Proxy.newProxyInstance(Vm.class.getClassLoader(), new Class<?>[] {Vm.class}, (proxy, method, args) ->
        method.getName().equals("memslotAt") ? InvocationHandler.invokeDefault(proxy, method, args) : method.invoke(vm, args));
  }

  @ParameterizedTest
  @MethodSource("backends")
  void memslotAtFindsTheSlotHoldingAGpaInAddressSpaceZero(String backend) {
    withVm(backend, (vm, f) -> {
      Memslot low = vm.setMemoryRegion(0, GM, 0, 4 * PAGE, f, 0);
      Memslot high = vm.setMemoryRegion(5, GM, 8 * PAGE, 4 * PAGE, f, 4 * PAGE);
      long t = (1L << 52) - 4 * PAGE; // near the largest GFN
      Memslot top = vm.setMemoryRegion(7, GM, t, 2 * PAGE, f, 8 * PAGE);
      assertEquals(3, vm.memslots().size());
      long[] gpas = {0, PAGE - 1, 4 * PAGE - 1, 4 * PAGE, 6 * PAGE, 8 * PAGE - 1, 8 * PAGE, 12 * PAGE - 1, 12 * PAGE,
          1L << 40, t - 1, t, t + 2 * PAGE - 1, t + 2 * PAGE, -1};
      Memslot[] expected = {low, low, low, null, null, null, high, high, null, null, null, top, top, null, null};
      Vm byDefault = withDefaultMemslotAt(vm);
      for (int i = 0; i < gpas.length; i++) {
        String at = "gpa 0x" + Long.toHexString(gpas[i]);
        assertEquals(expected[i], vm.memslotAt(gpas[i]), at);
        assertEquals(expected[i], byDefault.memslotAt(gpas[i]), at + ": the interface's default");
      }
      vm.setMemoryRegion(5, GM, 8 * PAGE, 0, null, 0);
      assertEquals(null, vm.memslotAt(8 * PAGE), "a deleted slot is gone from the lookup");
      assertEquals(low, vm.memslotAt(3 * PAGE));
    });
  }
}
