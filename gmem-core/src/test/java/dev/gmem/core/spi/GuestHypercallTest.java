package dev.gmem.core.spi;

import static dev.gmem.core.conformance.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestCall;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Guest-initiated conversion through the software vCPU: the guest issues KVM_HC_MAP_GPA_RANGE,
 * the VMM sees {@link VcpuExit.Hypercall} exits, converts and completes them, the guest sees the
 * result — with core's default arch (x86 KVM's own handling) and with the fixture arch's chunked
 * protocol. The real-vCPU side is {@code HypercallExitTest}.
 */
class GuestHypercallTest {
  static final long PAGE = 4096;
  static final long GPA = 0x10_0000;

  static Stream<String> backends() {
    return Backends.names();
  }

  /** The VMM's loop: each exit converts its range as the guest asked, answered with {@code answer(exit index)}. */
  private static List<VcpuExit.Hypercall> serve(GuestCall call, GuestMemFile f, java.util.function.IntToLongFunction answer) {
    List<VcpuExit.Hypercall> exits = new ArrayList<>();
    for (VcpuExit.Hypercall exit; (exit = call.pendingExit()) != null; ) {
      long ret = answer.applyAsLong(exits.size());
      exits.add(exit);
      if (ret == 0) {
        f.setShareability(exit.gpa() - GPA, exit.npages() * PAGE, exit.toPrivate() ? Shareability.PRIVATE : Shareability.SHARED);
      }
      call.complete(ret);
    }
    return exits;
  }

  @ParameterizedTest
  @MethodSource("backends")
  void withTheDefaultArchAValidRangeExitsOnceAndTheGuestReadsTheVmmsAnswer(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile f = vm.createGuestMemFile(8 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 8 * PAGE, f, 0);
      SoftwareVcpu guest = vm.softwareVcpu();

      GuestCall call = guest.hypercall(VcpuExit.Hypercall.MAP_GPA_RANGE, GPA + 2 * PAGE, 3, VcpuExit.Hypercall.ENCRYPTED);
      List<VcpuExit.Hypercall> exits = serve(call, f, i -> 0);

      assertEquals(List.of(VcpuExit.Hypercall.mapGpaRange(GPA + 2 * PAGE, 3, VcpuExit.Hypercall.ENCRYPTED)), exits);
      assertEquals(0, call.result().value());
      assertEquals(Shareability.PRIVATE, f.shareability(2 * PAGE, 3 * PAGE).orElseThrow());
      assertEquals(Shareability.SHARED, f.shareability(0, 2 * PAGE).orElseThrow());
      guest.writeLong(GPA + 3 * PAGE, 9, true);
      assertThrows(IllegalStateException.class, () -> call.complete(0), "nothing pending any more");

      GuestCall refused = guest.hypercall(VcpuExit.Hypercall.MAP_GPA_RANGE, GPA, 1, VcpuExit.Hypercall.DECRYPTED);
      serve(refused, f, i -> 22);
      assertEquals(22, refused.result().value(), "the VMM's non-zero answer reaches the guest");
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void badRangesAndUnknownNumbersReturnWithoutAnExit(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      SoftwareVcpu guest = rt.createVm(VmType.SW_PROTECTED).softwareVcpu();
      for (long[] args : new long[][] {{GPA + 1, 1, 0}, {GPA, 0, 0}, {GPA, -1, 0}}) {
        GuestCall call = guest.hypercall(VcpuExit.Hypercall.MAP_GPA_RANGE, args);
        assertNull(call.pendingExit());
        assertEquals(-VcpuExit.Hypercall.KVM_EINVAL, call.result().value());
      }
      GuestCall unknown = guest.hypercall(99, 1, 2);
      assertNull(unknown.pendingExit());
      assertEquals(-VcpuExit.Hypercall.KVM_ENOSYS, unknown.result().value());
      expect(Errno.EINVAL, () -> guest.hypercall(12, 1, 2, 3, 4, 5, 6, 7));
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void theFixtureArchExitsInChunksAndStopsAtTheFirstRefusedChunk(String backend) {
    try (GmemRuntime rt = SpiFixtures.runtime(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile f = vm.createGuestMemFile(8 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 8 * PAGE, f, 0);

      GuestCall call = vm.softwareVcpu().hypercall(VcpuExit.Hypercall.MAP_GPA_RANGE, GPA, 5, VcpuExit.Hypercall.ENCRYPTED);
      assertThrows(IllegalStateException.class, call::result, "no result while an exit is pending");
      List<VcpuExit.Hypercall> exits = serve(call, f, i -> 0);
      assertEquals(List.of(
          VcpuExit.Hypercall.mapGpaRange(GPA, 2, VcpuExit.Hypercall.ENCRYPTED),
          VcpuExit.Hypercall.mapGpaRange(GPA + 2 * PAGE, 2, VcpuExit.Hypercall.ENCRYPTED),
          VcpuExit.Hypercall.mapGpaRange(GPA + 4 * PAGE, 1, VcpuExit.Hypercall.ENCRYPTED)), exits);
      assertEquals(new GuestCall.Result(0, new long[] {GPA + 5 * PAGE}), call.result());
      assertEquals(Shareability.PRIVATE, f.shareability(0, 5 * PAGE).orElseThrow());

      GuestCall back = vm.softwareVcpu().hypercall(VcpuExit.Hypercall.MAP_GPA_RANGE, GPA, 5, VcpuExit.Hypercall.DECRYPTED);
      assertEquals(2, serve(back, f, i -> i == 1 ? 1 : 0).size(), "the refused second chunk ends the call");
      assertEquals(new GuestCall.Result(FixtureArch.INVALID_OPERAND, new long[] {GPA + 2 * PAGE}), back.result(), "with the failing GPA");
      assertEquals(Shareability.SHARED, f.shareability(0, 2 * PAGE).orElseThrow());
      assertEquals(Shareability.PRIVATE, f.shareability(2 * PAGE, 3 * PAGE).orElseThrow());
    }
  }
}
