package dev.gmem.core.convert;

import static dev.gmem.core.conformance.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Pin;
import dev.gmem.api.Shareability;
import dev.gmem.api.ShareabilityRange;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import dev.gmem.core.conformance.KernelCopy;
import dev.gmem.core.sys.Sys;
import java.util.List;
import java.util.function.BiConsumer;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** In-place conversion through the public API, on every backend. */
class ConversionTest {
  static final long PAGE = 4096;
  static final long SIZE = 16 * PAGE;
  private static final Sys SYS = Sys.load();

  static java.util.stream.Stream<String> backends() {
    return Backends.names();
  }

  private static void withFile(String backend, BiConsumer<Vm, GuestMemFile> test) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      try (GuestMemFile f = vm.createGuestMemFile(SIZE, GmemFlags.MMAP | GmemFlags.INIT_SHARED)) {
        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, SIZE, f, 0);
        test.accept(vm, f);
      }
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void toPrivateHidesThePageFromTheHostAndToSharedGivesItBack(String backend) {
    withFile(backend, (vm, f) -> {
      try (HostMapping m = f.map()) {
        m.putLong(2 * PAGE, 0x1111);
        f.setShareability(2 * PAGE, PAGE, Shareability.PRIVATE);
        assertEquals(Shareability.PRIVATE, f.shareability(2 * PAGE));
        assertEquals(Errno.EACCES, assertThrows(GmemException.class, () -> m.getLong(2 * PAGE)).errno());
        assertEquals(Errno.EFAULT, KernelCopy.read(m.address() + 2 * PAGE, 8), "the host mapping really faults");
        assertEquals(0, m.getLong(3 * PAGE), "neighbours stay accessible");

        SoftwareVcpu cpu = vm.softwareVcpu();
        assertEquals(0x1111, cpu.readLong(2 * PAGE, true), "the default arch keeps contents");
        cpu.writeLong(2 * PAGE, 0x2222, true);
        assertEquals(0x2222, cpu.readLong(2 * PAGE, false), "SW_PROTECTED: the page makes the access private");

        f.setShareability(2 * PAGE, PAGE, Shareability.SHARED);
        assertEquals(null, KernelCopy.read(m.address() + 2 * PAGE, 8), "healed on the next host access");
        assertEquals(0x2222, m.getLong(2 * PAGE));
        assertNull(cpu.read(2 * PAGE, new byte[8], 0, 8, false));
        assertEquals(1, f.inode().shareabilityRanges(0, SIZE / PAGE).size(), "neighbours merged again");
      }
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aPartlyMappedLastPageIsHiddenAndHealedLikeAnyOther(String backend) {
    withFile(backend, (vm, f) -> {
      try (HostMapping m = f.map(0, PAGE + 100, dev.gmem.api.Prot.READ_WRITE, dev.gmem.api.MapFlags.SHARED)) {
        m.putLong(PAGE, 7);
        f.setShareability(PAGE, PAGE, Shareability.PRIVATE);
        assertEquals(Errno.EFAULT, KernelCopy.read(m.address() + PAGE, 8), "the mapping's partial last page is covered too");
        f.setShareability(PAGE, PAGE, Shareability.SHARED);
        assertEquals(null, KernelCopy.read(m.address() + PAGE, 8));
        assertEquals(7, m.getLong(PAGE));
      }
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aPinnedPageMakesToPrivateFailWithItsOffsetAndChangesNothing(String backend) {
    withFile(backend, (vm, f) -> {
      try (HostMapping m = f.map()) {
        for (long p = 0; p < 8; p++) {
          m.putLong(p * PAGE, p);
        }
        Pin pin = f.pin(5 * PAGE, 2 * PAGE);
        GmemException e = expect(Errno.EAGAIN, () -> f.setShareability(0, 8 * PAGE, Shareability.PRIVATE));
        assertEquals(5 * PAGE, e.errorOffset().orElseThrow());
        assertEquals(List.of(new ShareabilityRange(0, SIZE / PAGE, Shareability.SHARED)), f.inode().shareabilityRanges(0, SIZE / PAGE));
        for (long p = 0; p < 8; p++) {
          assertEquals(p, m.getLong(p * PAGE), "shared contents survive the failed call");
        }
        pin.close();
        f.setShareability(0, 8 * PAGE, Shareability.PRIVATE);
        assertEquals(Shareability.PRIVATE, f.shareability(7 * PAGE));
        assertEquals(Shareability.SHARED, f.shareability(8 * PAGE));
      }
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void freshFoliosInTheLruBatchAreDrainedOnce(String backend) {
    withFile(backend, (vm, f) -> {
      try (HostMapping m = f.map()) {
        m.putLong(0, 42); // a new folio: it sits in the LRU batch with a transient reference
        f.setShareability(0, PAGE, Shareability.PRIVATE);
        assertEquals(Shareability.PRIVATE, f.shareability(0));
        assertEquals(42, vm.softwareVcpu().readLong(0, true));
      }
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void badInputIsEinvalOrEbadfAndChangesNothing(String backend) {
    withFile(backend, (vm, f) -> {
      List<ShareabilityRange> before = f.inode().shareabilityRanges(0, SIZE / PAGE);
      expect(Errno.EINVAL, () -> f.setShareability(1, PAGE, Shareability.PRIVATE));
      expect(Errno.EINVAL, () -> f.setShareability(0, PAGE + 1, Shareability.PRIVATE));
      expect(Errno.EINVAL, () -> f.setShareability(0, 0, Shareability.PRIVATE));
      expect(Errno.EINVAL, () -> f.setShareability(PAGE, -PAGE, Shareability.PRIVATE));
      expect(Errno.EINVAL, () -> f.setShareability(Long.MAX_VALUE & ~(PAGE - 1), 2 * PAGE, Shareability.PRIVATE));
      expect(Errno.EINVAL, () -> f.setShareability(SIZE, PAGE, Shareability.PRIVATE));
      expect(Errno.EINVAL, () -> f.setShareability(SIZE - PAGE, 2 * PAGE, Shareability.PRIVATE));
      expect(Errno.EINVAL, () -> f.setShareability(0, PAGE, Shareability.NONE));
      expect(Errno.EINVAL, () -> f.setShareability(0, PAGE, null));
      assertEquals(before, f.inode().shareabilityRanges(0, SIZE / PAGE));
      GuestMemFile other = vm.createGuestMemFile(SIZE, GmemFlags.MMAP);
      other.close();
      expect(Errno.EBADF, () -> other.setShareability(0, PAGE, Shareability.SHARED));
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aVmWithoutPrivateMemoryCannotConvertToPrivateButCanShare(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      try (GuestMemFile f = vm.createGuestMemFile(SIZE, GmemFlags.MMAP); HostMapping m = f.map()) {
        expect(Errno.EACCES, () -> m.getLong(0));
        expect(Errno.EINVAL, () -> f.setShareability(0, PAGE, Shareability.PRIVATE));
        f.setShareability(0, PAGE, Shareability.SHARED);
        m.putLong(0, 9);
        assertEquals(9, m.getLong(0));
      }
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void nothingToDoReturnsEarlyEvenWithPins(String backend) {
    withFile(backend, (vm, f) -> {
      try (Pin pin = f.pin(0, PAGE)) {
        f.setShareability(0, SIZE, Shareability.SHARED);
        assertEquals(1, f.inode().folios(0, 1).get(0).refcount());
        assertEquals(true, pin.isHeld());
      }
      assertEquals(0, f.inode().folios(0, 1).get(0).refcount());
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void pinningAPrivatePageIsRefused(String backend) {
    withFile(backend, (vm, f) -> {
      f.setShareability(PAGE, PAGE, Shareability.PRIVATE);
      expect(Errno.EFAULT, () -> f.pin(0, 2 * PAGE));
      assertEquals(0, f.inode().folios(0, 2).stream().mapToInt(x -> x.refcount()).sum(), "a refused pin takes nothing");
      expect(Errno.EINVAL, () -> f.pin(1, PAGE));
      expect(Errno.EFAULT, () -> f.pin(SIZE, PAGE));
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void punchLeavesShareabilityAndAPinnedPunchedPageIsForgotten(String backend) {
    withFile(backend, (vm, f) -> {
      Pin pin = f.pin(0, PAGE);
      f.setShareability(PAGE, PAGE, Shareability.PRIVATE);
      f.punchHole(0, 2 * PAGE);
      assertEquals(Shareability.PRIVATE, f.shareability(PAGE));
      assertEquals(Shareability.SHARED, f.shareability(0));
      try (HostMapping m = f.map()) {
        assertEquals(0, m.getLong(0));
      }
      pin.close();
      assertEquals(0, f.inode().folios(0, 1).get(0).refcount(), "closing the pin leaves the new folio alone");
      assertEquals(false, pin.isHeld());
    });
  }
}
