package dev.gmem.core.vcpu;

import static dev.gmem.core.vcpu.GuestPrograms.CODE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.gmem.api.VcpuExit;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.Test;

/**
 * {@code KVM_EXIT_HYPERCALL} on a real vCPU: a real-mode guest issues {@code KVM_HC_MAP_GPA_RANGE}
 * with {@code KVM_CAP_EXIT_HYPERCALL} enabled, the VMM sees the exit and completes it, the guest
 * reads the VMM's return value. Skipped where the host's KVM never completes the guest's VMCALL
 * (kvm_pvm spins on it; the probe kicks the vCPU out and finds it still at the VMCALL).
 */
class HypercallExitTest {
  /** How long the probe lets the guest try before concluding the host cannot deliver the exit. */
  private static final long PROBE_SECONDS = 5;

  @Test
  void mapGpaRangeExitsToTheVmmAndTheGuestReadsItsAnswer() throws Exception {
    try (TestGuest g = TestGuest.create()) {
      assumeTrue(g.kvm.enableMapGpaRangeExits(g.vm), "host KVM offers no KVM_CAP_EXIT_HYPERCALL for MAP_GPA_RANGE");
      g.load(CODE, GuestPrograms.REAL_MODE_MAP_GPA_RANGE);
      g.startRealMode(CODE);
      VcpuExit first = runWithProbe(g);

      VcpuExit.Hypercall hc = (VcpuExit.Hypercall) first;
      assertEquals(VcpuExit.Hypercall.MAP_GPA_RANGE, hc.nr());
      assertEquals(GuestPrograms.MAP_GPA, hc.gpa());
      assertEquals(2, hc.npages());
      assertEquals(true, hc.toPrivate());
      assertEquals(0, hc.flags() & VcpuExit.Hypercall.FLAG_LONG_MODE, "a 16-bit guest");
      g.vcpu.completeHypercall(0x5a);
      assertThrows(IllegalStateException.class, () -> g.vcpu.completeHypercall(1), "answered once");
      assertEquals(new VcpuExit.Io(true, 0x10, 4, 1, new byte[] {0x5a, 0, 0, 0}), g.vcpu.run(), "the guest read the VMM's ret in eax");
      assertEquals(new VcpuExit.Hlt(), g.vcpu.run());
    }
  }

  /** The first exit; skips when the host leaves the guest at its VMCALL (kicked out after the probe time). */
  private static VcpuExit runWithProbe(TestGuest g) throws Exception {
    CompletableFuture<VcpuExit> run = CompletableFuture.supplyAsync(g.vcpu::run);
    try {
      return run.get(PROBE_SECONDS, TimeUnit.SECONDS);
    } catch (TimeoutException e) {
      g.vcpu.kick();
      VcpuExit exit = run.get();
      long rip = g.vcpu.registers().rip();
      assumeTrue(!(exit instanceof VcpuExit.Other) || rip != CODE + GuestPrograms.MAP_GPA_RANGE_VMCALL,
          "this host's KVM never completes the guest's VMCALL (kvm_pvm spins on it): no KVM_EXIT_HYPERCALL to test");
      return exit;
    }
  }

  @Test
  void completingWithoutAHypercallExitIsAnError() {
    try (TestGuest g = TestGuest.create()) {
      assertThrows(IllegalStateException.class, () -> g.vcpu.completeHypercall(0));
    }
  }
}
