package dev.gmem.arch.pkvm;

import dev.gmem.api.GmemException;
import dev.gmem.api.GuestCall;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;

/**
 * The VMM's side of the guest's memory calls, as a pKVM VMM on guest_memfd does it: MEM_SHARE →
 * convert the page to SHARED, MEM_UNSHARE → to PRIVATE (gmem unmaps it from the host first, and
 * parks it in NONE while pins hold it), MEM_RELINQUISH → free it (punch). A conversion or punch
 * that fails is answered with 1 (the guest reads {@link PkvmHypercalls#INVALID_PARAMETER}).
 * Exits the VMM does not know are left pending. Not thread-safe per call, as a vCPU thread.
 */
public final class MemoryCallService {
  private MemoryCallService() {}

  /** Completes every exit of {@code call} on {@code vm}'s memslots; returns what the guest reads (x0). */
  public static long serve(Vm vm, GuestCall call) {
    for (VcpuExit.Hypercall exit; (exit = call.pendingExit()) != null; ) {
      if (!PkvmHypercalls.isMemoryCall(exit)) {
        throw new IllegalArgumentException("not a pKVM memory call: " + exit);
      }
      call.complete(handle(vm, exit));
    }
    return call.result().value();
  }

  /** The VMM's part of one exit: 0 when done, 1 when gmem refused. */
  public static long handle(Vm vm, VcpuExit.Hypercall exit) {
    long ipa = PkvmHypercalls.ipa(exit);
    Memslot slot = vm.memslotAt(ipa);
    if (slot == null) {
      return 1;
    }
    long offset = slot.offset() + (ipa - slot.gpa());
    try {
      if (exit.nr() == PkvmHypercalls.MEM_SHARE) {
        slot.file().setShareability(offset, 4096, Shareability.SHARED);
      } else if (exit.nr() == PkvmHypercalls.MEM_UNSHARE) {
        slot.file().setShareability(offset, 4096, Shareability.PRIVATE);
      } else {
        slot.file().punchHole(offset, 4096);
      }
      return 0;
    } catch (GmemException e) {
      return 1;
    }
  }
}
