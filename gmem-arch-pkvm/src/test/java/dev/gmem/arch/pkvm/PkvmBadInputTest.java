package dev.gmem.arch.pkvm;

import static dev.gmem.core.conformance.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestCall;
import dev.gmem.api.Shareability;
import dev.gmem.api.ShareabilityRange;
import dev.gmem.api.VcpuExit;
import dev.gmem.core.conformance.Backends;
import java.util.List;
import java.util.Optional;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every new entry point with bad input: the guest's calls get the SMCCC status pKVM returns (the
 * hypervisor's EPERM reads as INVALID_PARAMETER), with no exit and nothing changed; the VMM's
 * conversions against ownership get EPERM and change nothing; a call's protocol is enforced.
 */
class PkvmBadInputTest {
  static final long PAGE = PkvmGuest.PAGE;

  static Stream<String> backends() {
    return Backends.names();
  }

  /** Page 0 guest-owned, page 1 shared with the host, pages 2 and 3 never touched. */
  private static PkvmGuest setUp(GmemRuntime rt) {
    PkvmGuest g = new PkvmGuest(rt, 4);
    g.cpu.writeLong(g.gpa(0), 0x11, true);
    g.cpu.writeLong(g.gpa(1), 0, true);
    assertEquals(PkvmHypercalls.SUCCESS, g.call(PkvmHypercalls.MEM_SHARE, 1));
    g.map.putLong(PAGE, 0x22);
    return g;
  }

  private record Snapshot(List<ShareabilityRange> shareability, List<Optional<Ownership>> ownership, long owned, long shared) {}

  private static Snapshot snapshot(PkvmGuest g) {
    return new Snapshot(g.file.shareability(0, 4 * PAGE).map(s -> List.of(new ShareabilityRange(0, 4, s))).orElseGet(() -> ranges(g)),
        List.of(g.hyp.ownership(g.page(0)), g.hyp.ownership(g.page(1)), g.hyp.ownership(g.page(2)), g.hyp.ownership(g.page(3))),
        g.cpu.readLong(g.gpa(0), true), g.map.getLong(PAGE));
  }

  private static List<ShareabilityRange> ranges(PkvmGuest g) {
    return List.of(new ShareabilityRange(0, 1, g.file.shareability(0)), new ShareabilityRange(1, 2, g.file.shareability(PAGE)),
        new ShareabilityRange(2, 4, g.file.shareability(2 * PAGE)));
  }

  private static void refusedWithoutExit(PkvmGuest g, long expected, long nr, long... args) {
    Snapshot before = snapshot(g);
    GuestCall call = g.cpu.hypercall(nr, args);
    assertNull(call.pendingExit(), "no exit for " + PkvmHypercalls.name(nr));
    assertEquals(expected, call.result().value(), PkvmHypercalls.name(nr) + " " + java.util.Arrays.toString(args));
    assertThrows(IllegalStateException.class, () -> call.complete(0));
    assertEquals(before, snapshot(g), "nothing changed");
  }

  @ParameterizedTest
  @MethodSource("backends")
  void guestCallsRefusedByTheHypervisor(String backend) {
    try (GmemRuntime rt = Backends.open(backend); PkvmGuest g = setUp(rt)) {
      long inv = PkvmHypercalls.INVALID_PARAMETER;
      refusedWithoutExit(g, inv, PkvmHypercalls.MEM_SHARE, g.gpa(0), 1, 0); // x2 must be 0
      refusedWithoutExit(g, inv, PkvmHypercalls.MEM_SHARE, g.gpa(0), 0, 1); // x3 must be 0
      refusedWithoutExit(g, inv, PkvmHypercalls.MEM_SHARE, g.gpa(1)); // already shared: guest SHARED_OWNED, not OWNED
      refusedWithoutExit(g, inv, PkvmHypercalls.MEM_UNSHARE, g.gpa(0)); // guest-owned, not shared
      refusedWithoutExit(g, inv, PkvmHypercalls.MEM_UNSHARE, g.gpa(2)); // not in the guest's stage 2
      refusedWithoutExit(g, inv, PkvmHypercalls.MEM_UNSHARE, g.gpa(1), 7, 0);
      refusedWithoutExit(g, inv, PkvmHypercalls.MEM_RELINQUISH, g.gpa(1)); // shared: only OWNED pages are relinquished
      refusedWithoutExit(g, inv, PkvmHypercalls.MEM_RELINQUISH, g.gpa(0), 0, 3);
      refusedWithoutExit(g, PkvmHypercalls.SUCCESS, PkvmHypercalls.MEM_RELINQUISH, g.gpa(3)); // nothing mapped: nothing to do
      refusedWithoutExit(g, 4096, PkvmHypercalls.HYP_MEMINFO);
      refusedWithoutExit(g, inv, PkvmHypercalls.HYP_MEMINFO, 1);
      refusedWithoutExit(g, PkvmHypercalls.NOT_SUPPORTED, 0xC600_0005L, g.gpa(0)); // MMIO_GUARD_INFO: not modelled
      refusedWithoutExit(g, PkvmHypercalls.NOT_SUPPORTED, VcpuExit.Hypercall.MAP_GPA_RANGE, g.gpa(0), 1, VcpuExit.Hypercall.DECRYPTED);
      refusedWithoutExit(g, PkvmHypercalls.NOT_SUPPORTED, 3, g.gpa(0)); // the bare number is not the SMCCC function id
      Snapshot before = snapshot(g);
      expect(Errno.EINVAL, () -> g.cpu.hypercall(PkvmHypercalls.MEM_SHARE, 1, 2, 3, 4, 5, 6, 7)); // more than kvm_run carries
      assertEquals(before, snapshot(g));
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aCallsProtocolIsEnforced(String backend) {
    try (GmemRuntime rt = Backends.open(backend); PkvmGuest g = setUp(rt)) {
      GuestCall call = g.cpu.hypercall(PkvmHypercalls.MEM_UNSHARE, g.gpa(1));
      assertThrows(IllegalStateException.class, call::result, "no result while the exit is pending");
      assertEquals(0, MemoryCallService.serve(g.vm, call));
      assertThrows(IllegalStateException.class, () -> call.complete(0), "completed once");
      assertEquals(Shareability.PRIVATE, g.file.shareability(PAGE));
      assertThrows(IllegalArgumentException.class, () -> MemoryCallService.serve(g.vm,
          GuestCall.exits(VcpuExit.Hypercall.mapGpaRange(g.gpa(0), 1, 0))), "not a pKVM call");
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void vmmConversionsAgainstOwnershipFailWithEpermAndChangeNothing(String backend) {
    try (GmemRuntime rt = Backends.open(backend); PkvmGuest g = setUp(rt)) {
      Snapshot before = snapshot(g);
      long seq = g.file.shareabilitySequence();
      expect(Errno.EPERM, () -> g.file.setShareability(0, PAGE, Shareability.SHARED)); // guest-owned
      expect(Errno.EPERM, () -> g.file.setShareability(2 * PAGE, 2 * PAGE, Shareability.SHARED)); // never given to the guest
      expect(Errno.EPERM, () -> g.file.setShareability(PAGE, PAGE, Shareability.PRIVATE)); // shared, not unshared by the guest
      expect(Errno.EPERM, () -> g.file.setShareability(0, 4 * PAGE, Shareability.SHARED)); // a run the guest shared plus others
      expect(Errno.EINVAL, () -> g.file.setShareability(0, PAGE, Shareability.NONE)); // NONE is the drain's, never a target
      assertEquals(before, snapshot(g));
      assertEquals(seq, g.file.shareabilitySequence());

      GuestCall pending = g.cpu.hypercall(PkvmHypercalls.MEM_SHARE, g.gpa(0));
      expect(Errno.EPERM, () -> g.file.setShareability(0, 2 * PAGE, Shareability.PRIVATE)); // the share asked for SHARED, page 1 stays
      pending.complete(1);
      assertEquals(PkvmHypercalls.INVALID_PARAMETER, pending.result().value());
      expect(Errno.EPERM, () -> g.file.setShareability(0, PAGE, Shareability.SHARED)); // the refused request is gone
      assertEquals(before, snapshot(g));
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aShareOfAnIpaWithNoMemoryBehindItFailsAndLeavesNoRequest(String backend) {
    try (GmemRuntime rt = Backends.open(backend); PkvmGuest g = setUp(rt)) {
      Snapshot before = snapshot(g);
      GuestCall call = g.cpu.hypercall(PkvmHypercalls.MEM_SHARE, 0x4000_0000L); // outside every memslot
      assertEquals(PkvmHypercalls.MEM_SHARE, call.pendingExit().nr(), "the hypervisor asks the host to map it");
      assertEquals(PkvmHypercalls.INVALID_PARAMETER, MemoryCallService.serve(g.vm, call), "the VMM has nothing to map there");
      assertEquals(before, snapshot(g));
      expect(Errno.EPERM, () -> g.file.setShareability(2 * PAGE, PAGE, Shareability.SHARED)); // no request left to cover it
      assertEquals(before, snapshot(g));
    }
  }
}
