package dev.gmem.core.vcpu;

import static dev.gmem.core.vcpu.GuestPrograms.CODE;
import static dev.gmem.core.vcpu.GuestPrograms.DATA;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.VcpuExit;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@code Vcpu.kick()}: a guest that never exits by itself is stopped from another thread
 * (immediate_exit plus a signal), and a kick between runs stops the next one.
 */
class VcpuKickTest {
  private static final VcpuExit INTR = new VcpuExit.Other(VcpuExit.Other.INTR);

  /** The guest spins until the byte at DATA is set; it says it runs by setting DATA+1. */
  @Test
  @Timeout(value = 60, unit = TimeUnit.SECONDS)
  void aKickStopsASpinningGuestFromAnotherThread() throws Exception {
    try (TestGuest g = TestGuest.create()) {
      g.load(CODE, GuestPrograms.REAL_MODE_WAIT_FOR_FLAG);
      g.startRealMode(CODE);
      CompletableFuture<VcpuExit> exit = CompletableFuture.supplyAsync(g.vcpu::run);
      while (g.ram.get((int) DATA + 1) != 1) {
        Thread.onSpinWait(); // wait until the guest is really inside KVM_RUN, spinning
      }
      g.vcpu.kick();
      assertEquals(INTR, exit.get(), "the spinning guest was stopped");
      long rip = g.vcpu.registers().rip();
      assertTrue(rip > CODE && rip < CODE + GuestPrograms.REAL_MODE_WAIT_FOR_FLAG.length - 1, "stopped inside the loop, rip 0x" + Long.toHexString(rip));

      // The kick is consumed: with the flag set the guest now runs to its HLT.
      g.ram.put((int) DATA, (byte) 1);
      assertEquals(new VcpuExit.Hlt(), g.vcpu.run());
    }
  }

  @Test
  void aKickBetweenRunsStopsTheNextRunOnlyAndKicksCoalesce() {
    try (TestGuest g = TestGuest.create()) {
      g.load(CODE, GuestPrograms.REAL_MODE_INCREMENT);
      g.startRealMode(CODE);
      g.vcpu.kick();
      g.vcpu.kick();
      assertEquals(INTR, g.vcpu.run(), "the pending kick stops the run before the guest executes");
      assertEquals(CODE, g.vcpu.registers().rip(), "nothing ran");
      assertEquals(VcpuExit.Io.class, g.vcpu.run().getClass(), "the next run enters the guest");
    }
  }

  @Test
  void aClosedVcpuCannotBeKicked() {
    try (TestGuest g = TestGuest.create()) {
      g.vcpu.close();
      assertEquals(Errno.EBADF, assertThrows(GmemException.class, g.vcpu::kick).errno());
    }
  }
}
