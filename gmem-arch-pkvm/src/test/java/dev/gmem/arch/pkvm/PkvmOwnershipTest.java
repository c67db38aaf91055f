package dev.gmem.arch.pkvm;

import static dev.gmem.core.conformance.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestCall;
import dev.gmem.api.Pin;
import dev.gmem.api.Shareability;
import dev.gmem.api.VcpuExit;
import dev.gmem.core.conformance.Backends;
import dev.gmem.core.conformance.KernelCopy;
import java.util.Optional;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The hypervisor's ownership model against gmem's real runtime (kvm and memfd backends): the
 * guest's calls move pages between the states of {@code mem_protect.c}, host faults follow the
 * ownership, the VMM cannot convert what the guest did not ask for, and an unshare of a pinned
 * page waits in NONE until the pin goes.
 */
class PkvmOwnershipTest {
  static final long PAGE = PkvmGuest.PAGE;
  static final long SECRET = 0x5ec2e7_0000_0001L;

  static Stream<String> backends() {
    return Backends.names();
  }

  @ParameterizedTest
  @MethodSource("backends")
  void guestSharesHostWritesGuestUnsharesUnderAPinParksInNoneThenTurnsPrivate(String backend) {
    try (GmemRuntime rt = Backends.open(backend); PkvmGuest g = new PkvmGuest(rt, 4)) {
      g.cpu.writeLong(g.gpa(1), SECRET, true);
      assertEquals(new Ownership(PageState.NOPAGE, PageState.OWNED, g.gpa(1) >>> 12, false), g.hyp.ownership(g.page(1)).orElseThrow(),
          "the first private fault donated the page");
      expect(Errno.EACCES, () -> g.map.getLong(PAGE));
      assertEquals(Errno.EFAULT, KernelCopy.read(g.map.address() + PAGE, 8), "not even the kernel reads it through the mapping");

      g.cpu.writeLong(g.gpa(1), 0, true); // the guest scrubs what it shares
      assertEquals(PkvmHypercalls.SUCCESS, g.call(PkvmHypercalls.MEM_SHARE, 1));
      assertEquals(Shareability.SHARED, g.file.shareability(PAGE));
      assertEquals(PageState.SHARED_BORROWED, g.hyp.hostState(g.page(1)));
      assertEquals(PageState.SHARED_OWNED, g.hyp.guestState(g.page(1)));
      assertNull(KernelCopy.read(g.map.address() + PAGE, 8), "the raw mapping has the page back");
      g.map.putLong(PAGE, 0x4057);
      assertEquals(0x4057, g.cpu.readLong(g.gpa(1), false), "the guest sees the host's write");

      Pin pin = g.file.pin(PAGE, PAGE);
      assertEquals(PkvmHypercalls.SUCCESS, g.call(PkvmHypercalls.MEM_UNSHARE, 1), "the unshare stands; it completes when the host lets go");
      assertEquals(Shareability.NONE, g.file.shareability(PAGE));
      assertTrue(g.hyp.ownership(g.page(1)).orElseThrow().unmapping());
      expect(Errno.EACCES, () -> g.map.getLong(PAGE));
      expect(Errno.EFAULT, () -> g.file.pin(PAGE, PAGE));
      assertInstanceOf(VcpuExit.MemoryFault.class, g.cpu.read(g.gpa(1), new byte[8], 0, 8, true), "nobody faults a NONE page, the guest neither");
      assertFalse(g.hyp.hostMayFault(g.page(1), Shareability.SHARED), "parked: refused even if gmem said SHARED");

      pin.close();

      assertEquals(Shareability.PRIVATE, g.file.shareability(PAGE));
      assertEquals(Optional.of(new Ownership(PageState.NOPAGE, PageState.OWNED, g.gpa(1) >>> 12, false)), g.hyp.ownership(g.page(1)));
      assertEquals(0x4057, g.cpu.readLong(g.gpa(1), true), "contents survive the round trip");
      expect(Errno.EACCES, () -> g.map.getLong(PAGE));
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void withoutReferencesTheUnshareGoesStraightToGuestOwned(String backend) {
    try (GmemRuntime rt = Backends.open(backend); PkvmGuest g = new PkvmGuest(rt, 2)) {
      g.cpu.writeLong(g.gpa(0), 1, true);
      assertEquals(PkvmHypercalls.SUCCESS, g.call(PkvmHypercalls.MEM_SHARE, 0));
      g.map.putLong(0, 2);
      assertEquals(PkvmHypercalls.SUCCESS, g.call(PkvmHypercalls.MEM_UNSHARE, 0));
      assertEquals(Shareability.PRIVATE, g.file.shareability(0));
      assertTrue(g.hyp.ownership(g.page(0)).orElseThrow().guestOwned());
      assertEquals(2, g.cpu.readLong(g.gpa(0), true));
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void theVmmCannotForceShareNorTakeASharedPageBack(String backend) {
    try (GmemRuntime rt = Backends.open(backend); PkvmGuest g = new PkvmGuest(rt, 4)) {
      g.cpu.writeLong(g.gpa(0), SECRET, true);
      long seq = g.file.shareabilitySequence();
      expect(Errno.EPERM, () -> g.file.setShareability(0, PAGE, Shareability.SHARED));
      expect(Errno.EPERM, () -> g.file.setShareability(PAGE, PAGE, Shareability.SHARED)); // never touched by the guest
      expect(Errno.EPERM, () -> g.file.setShareability(0, 4 * PAGE, Shareability.SHARED));
      assertEquals(Shareability.PRIVATE, g.file.shareability(0, 4 * PAGE).orElseThrow());
      assertEquals(seq, g.file.shareabilitySequence(), "nothing changed");
      assertTrue(g.hyp.ownership(g.page(0)).orElseThrow().guestOwned());
      assertEquals(SECRET, g.cpu.readLong(g.gpa(0), true));

      g.cpu.writeLong(g.gpa(2), 0, true);
      assertEquals(PkvmHypercalls.SUCCESS, g.call(PkvmHypercalls.MEM_SHARE, 2));
      g.map.putLong(2 * PAGE, 77);
      expect(Errno.EPERM, () -> g.file.setShareability(2 * PAGE, PAGE, Shareability.PRIVATE));
      assertEquals(Shareability.SHARED, g.file.shareability(2 * PAGE));
      assertEquals(77, g.map.getLong(2 * PAGE), "the host keeps the shared page and its contents");
      assertTrue(g.hyp.ownership(g.page(2)).orElseThrow().sharedWithHost());
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void anUnshareTheHostDidNotUnmapIsRefused(String backend) {
    try (GmemRuntime rt = Backends.open(backend); PkvmGuest g = new PkvmGuest(rt, 2)) {
      g.cpu.writeLong(g.gpa(0), 0, true);
      assertEquals(PkvmHypercalls.SUCCESS, g.call(PkvmHypercalls.MEM_SHARE, 0));
      GuestCall unshare = g.cpu.hypercall(PkvmHypercalls.MEM_UNSHARE, g.gpa(0));
      assertEquals(new VcpuExit.Hypercall(PkvmHypercalls.MEM_UNSHARE, new long[] {g.gpa(0), 0, 0}, 0), unshare.pendingExit());
      unshare.complete(0); // the VMM claims success but left the page mapped
      assertEquals(PkvmHypercalls.INVALID_PARAMETER, unshare.result().value());
      assertTrue(g.hyp.ownership(g.page(0)).orElseThrow().sharedWithHost());
      g.map.putLong(0, 5);
      assertEquals(5, g.map.getLong(0));

      GuestCall refused = g.cpu.hypercall(PkvmHypercalls.MEM_UNSHARE, g.gpa(0));
      refused.complete(1);
      assertEquals(PkvmHypercalls.INVALID_PARAMETER, refused.result().value(), "the VMM's refusal reaches the guest");
      expect(Errno.EPERM, () -> g.file.setShareability(0, PAGE, Shareability.PRIVATE)); // the request ended with the call
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aShareTheVmmCompletesWithoutConvertingLeavesTheHostOutUntilItConverts(String backend) {
    try (GmemRuntime rt = Backends.open(backend); PkvmGuest g = new PkvmGuest(rt, 2)) {
      g.cpu.writeLong(g.gpa(0), 0, true);
      GuestCall share = g.cpu.hypercall(PkvmHypercalls.MEM_SHARE, g.gpa(0));
      share.complete(0);
      assertEquals(PkvmHypercalls.SUCCESS, share.result().value());
      assertTrue(g.hyp.ownership(g.page(0)).orElseThrow().sharedWithHost());
      expect(Errno.EACCES, () -> g.map.getLong(0)); // gmem still says PRIVATE
      g.file.setShareability(0, PAGE, Shareability.SHARED); // the guest shared it: allowed late
      g.map.putLong(0, 9);
      assertEquals(9, g.cpu.readLong(g.gpa(0), false));
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void hostFaultsAreDecidedByOwnershipNotByTheVmmsBookkeeping(String backend) {
    try (GmemRuntime rt = Backends.open(backend); PkvmGuest g = new PkvmGuest(rt, 2)) {
      g.cpu.writeLong(g.gpa(0), SECRET, true);
      long before = g.hyp.refusedHostFaults();
      assertFalse(g.hyp.hostMayFault(g.page(0), Shareability.SHARED), "guest-owned: refused although asked as SHARED");
      assertEquals(before + 1, g.hyp.refusedHostFaults());
      assertFalse(g.hyp.hostMayFault(g.page(0), Shareability.PRIVATE));
      assertTrue(g.hyp.hostMayFault(g.page(1), Shareability.SHARED), "a page the guest never received is the host's");
      g.cpu.writeLong(g.gpa(0), 0, true);
      g.call(PkvmHypercalls.MEM_SHARE, 0);
      assertTrue(g.hyp.hostMayFault(g.page(0), Shareability.SHARED));
      assertFalse(g.hyp.hostMayFault(g.page(0), Shareability.NONE));
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void relinquishGivesThePageBackAndTheVmmFreesIt(String backend) {
    try (GmemRuntime rt = Backends.open(backend); PkvmGuest g = new PkvmGuest(rt, 2)) {
      g.cpu.writeLong(g.gpa(1), SECRET, true);
      long allocated = g.file.inode().allocatedPages();
      GuestCall call = g.cpu.hypercall(PkvmHypercalls.MEM_RELINQUISH, g.gpa(1));
      assertEquals(PkvmHypercalls.MEM_RELINQUISH, call.pendingExit().nr());
      assertEquals(Optional.empty(), g.hyp.ownership(g.page(1)), "the hypervisor gave it to the host at the call");
      assertEquals(PkvmHypercalls.SUCCESS, MemoryCallService.serve(g.vm, call));
      assertEquals(allocated - 1, g.file.inode().allocatedPages(), "the VMM freed it");
      expect(Errno.EPERM, () -> g.file.setShareability(PAGE, PAGE, Shareability.SHARED));
      assertEquals(0, g.cpu.readLong(g.gpa(1), true), "touched again, the guest gets fresh memory: the secret is gone");
      assertTrue(g.hyp.ownership(g.page(1)).orElseThrow().guestOwned());
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void teardownReclaimsEveryGuestPageByFreeingIt(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      PkvmGuest g = new PkvmGuest(rt, 4);
      for (int i = 0; i < 3; i++) {
        g.cpu.writeLong(g.gpa(i), SECRET + i, true);
      }
      g.cpu.writeLong(g.gpa(3), 0, true);
      g.call(PkvmHypercalls.MEM_SHARE, 3);
      PkvmHypervisor hyp = g.hyp;
      assertEquals(4, hyp.guestPages());
      g.close(); // mapping, VM, file: the last reference evicts the inode

      assertEquals(0, hyp.guestPages(), "every page went back to the host");
      assertEquals(3, hyp.reclaimedGuestPages(), "the three guest-owned pages were reclaimed by freeing them; the shared one needs no poison");
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aProtectedVmRefusesInitSharedAndRunsOverTheBackendsDefaultVm(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      var vm = rt.createVm(dev.gmem.api.VmType.PKVM);
      expect(Errno.EINVAL, () -> vm.createGuestMemFile(PAGE, dev.gmem.api.GmemFlags.MMAP | dev.gmem.api.GmemFlags.INIT_SHARED));
      assertTrue(vm.arch(PkvmHypervisor.class).isPresent());
      assertNull(vm.arch(PkvmHypervisor.class).orElseThrow().ownership(new dev.gmem.api.spi.GmemPage(1, 0)).orElse(null));
      vm.close();
    }
  }

  /**
   * A real arm64 vCPU forwards the guest's SMCCC call to user space as {@code KVM_EXIT_HYPERCALL}
   * (function id in {@code nr}, x1.. in {@code args}); x86 hosts cannot issue HVC, so the exit is
   * built as KVM fills {@code kvm_run}. The VMM hands it to the same hypervisor checks and serves
   * the resulting call; x0 is what it puts back with {@code completeHypercall}.
   */
  @ParameterizedTest
  @MethodSource("backends")
  void aRealVcpusForwardedCallGoesThroughTheSameHypervisorChecks(String backend) {
    try (GmemRuntime rt = Backends.open(backend); PkvmGuest g = new PkvmGuest(rt, 2)) {
      g.cpu.writeLong(g.gpa(0), 0, true);
      VcpuExit exit = new VcpuExit.Hypercall(PkvmHypercalls.MEM_SHARE, new long[] {g.gpa(0) + 0x10, 0, 0}, 0);
      assertTrue(PkvmHypercalls.isMemoryCall(exit));
      VcpuExit.Hypercall h = (VcpuExit.Hypercall) exit;
      assertEquals(g.gpa(0), PkvmHypercalls.ipa(h), "the hypervisor works on the page holding the IPA");
      assertEquals(PkvmHypercalls.SUCCESS, MemoryCallService.serve(g.vm, g.hyp.guestCall(h.nr(), h.args())));
      assertEquals(Shareability.SHARED, g.file.shareability(0));
      assertEquals(PkvmHypercalls.INVALID_PARAMETER, MemoryCallService.serve(g.vm, g.hyp.guestCall(h.nr(), h.args())), "shared already");
      assertFalse(PkvmHypercalls.isMemoryCall(VcpuExit.Hypercall.mapGpaRange(g.gpa(0), 1, 0)));
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void theGuestSharingAParkedPageCancelsTheWaitingUnshare(String backend) {
    try (GmemRuntime rt = Backends.open(backend); PkvmGuest g = new PkvmGuest(rt, 2)) {
      g.cpu.writeLong(g.gpa(0), 0, true);
      g.call(PkvmHypercalls.MEM_SHARE, 0);
      g.map.putLong(0, 0x77);
      try (Pin pin = g.file.pin(0, PAGE)) {
        assertEquals(PkvmHypercalls.SUCCESS, g.call(PkvmHypercalls.MEM_UNSHARE, 0));
        assertEquals(Shareability.NONE, g.file.shareability(0));
        assertEquals(PkvmHypercalls.SUCCESS, g.call(PkvmHypercalls.MEM_SHARE, 0));
        assertEquals(Shareability.SHARED, g.file.shareability(0));
        assertTrue(pin.isHeld());
      }
      assertEquals(Shareability.SHARED, g.file.shareability(0), "nothing drained into private");
      assertTrue(g.hyp.ownership(g.page(0)).orElseThrow().sharedWithHost());
      assertEquals(0x77, g.map.getLong(0));
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aSharedPageTheHostRefaultedAfterAPunchIsTheHostsToGive(String backend) {
    try (GmemRuntime rt = Backends.open(backend); PkvmGuest g = new PkvmGuest(rt, 2)) {
      g.cpu.writeLong(g.gpa(0), 0, true);
      g.call(PkvmHypercalls.MEM_SHARE, 0);
      g.file.punchHole(0, PAGE);
      assertEquals(Optional.empty(), g.hyp.ownership(g.page(0)), "freed: back to the host");
      g.map.putLong(0, 3); // a fresh host page, still SHARED
      g.file.setShareability(0, PAGE, Shareability.PRIVATE); // the host gives its own page away
      expect(Errno.EACCES, () -> g.map.getLong(0));
      assertEquals(3, g.cpu.readLong(g.gpa(0), true));
      assertTrue(g.hyp.ownership(g.page(0)).orElseThrow().guestOwned(), "donated at the guest's fault");
    }
  }

  /** pKVM maps a page at an IPA the guest never touched and shares it in one go: no private use, no prepare. */
  @ParameterizedTest
  @MethodSource("backends")
  void aShareOfAnUntouchedIpaMapsAHostPageThereShared(String backend) {
    try (GmemRuntime rt = Backends.open(backend); PkvmGuest g = new PkvmGuest(rt, 2)) {
      GuestCall share = g.cpu.hypercall(PkvmHypercalls.MEM_SHARE, g.gpa(1));
      expect(Errno.EPERM, () -> g.file.setShareability(0, 2 * PAGE, Shareability.SHARED)); // one request covers one page
      assertEquals(PkvmHypercalls.SUCCESS, MemoryCallService.serve(g.vm, share));
      assertEquals(Shareability.SHARED, g.file.shareability(PAGE));
      assertEquals(Optional.of(new Ownership(PageState.SHARED_BORROWED, PageState.SHARED_OWNED, g.gpa(1) >>> 12, false)), g.hyp.ownership(g.page(1)));
      assertEquals(0, g.hyp.ownership(g.page(0)).map(o -> 1).orElse(0), "page 0 untouched");
      g.map.putLong(PAGE, 6);
      assertEquals(6, g.cpu.readLong(g.gpa(1), false));
      assertEquals(PkvmHypercalls.SUCCESS, g.call(PkvmHypercalls.MEM_UNSHARE, 1));
      assertEquals(6, g.cpu.readLong(g.gpa(1), true));
      expect(Errno.EPERM, () -> g.file.setShareability(0, PAGE, Shareability.SHARED));
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void theUnshareWaitsForEveryPinAndTheGpaViewIsRefusedMeanwhile(String backend) {
    try (GmemRuntime rt = Backends.open(backend); PkvmGuest g = new PkvmGuest(rt, 2)) {
      g.cpu.writeLong(g.gpa(0), SECRET, true);
      expect(Errno.EFAULT, () -> g.vm.guestMemory().loadLong(g.gpa(0))); // the VMM's GPA view: guest-owned
      g.cpu.writeLong(g.gpa(0), 0, true);
      g.call(PkvmHypercalls.MEM_SHARE, 0);
      g.vm.guestMemory().storeLong(g.gpa(0), 0x99);
      Pin first = g.file.pin(0, PAGE);
      Pin second = g.file.pin(0, PAGE);
      assertEquals(PkvmHypercalls.SUCCESS, g.call(PkvmHypercalls.MEM_UNSHARE, 0));
      expect(Errno.EFAULT, () -> g.vm.guestMemory().loadLong(g.gpa(0)));
      first.close();
      assertEquals(Shareability.NONE, g.file.shareability(0), "one pin still holds it");
      assertTrue(g.hyp.ownership(g.page(0)).orElseThrow().unmapping());
      second.close();
      assertEquals(Shareability.PRIVATE, g.file.shareability(0));
      assertTrue(g.hyp.ownership(g.page(0)).orElseThrow().guestOwned());
      assertEquals(0x99, g.cpu.readLong(g.gpa(0), true));
    }
  }
}
