package dev.gmem.migrate;

import static dev.gmem.core.conformance.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.core.conformance.Backends;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Either side of a migration killed (SIGKILL, in its own JVM) mid-stream: nothing is lost. A dead
 * source leaves the destination's VM paused, its faults failing within the deadline and never
 * served zeros; a dead destination leaves the source owning every page, able to resume the guest.
 */
class KillTest {
  static final long SIZE = 256L << 10;
  /** Slow enough that the stream is still running when the kill comes. */
  static final long BPS = 32L << 10;

  /** The dword the guest's fill pass left at data offset {@code i*4}. */
  static int filled(long i) {
    return Guest.SEED + (int) i * Guest.STEP;
  }

  @Test
  void aKilledSourcePausesTheDestinationWhoseFaultsFailWithinTheDeadlineAndAreNeverServedZeros() throws Exception {
    DestinationOptions opts = DestinationOptions.defaults().withRecoveryTimeout(Duration.ofSeconds(1)).withFaultDeadline(Duration.ofSeconds(3));
    try (GmemRuntime rt = Backends.open("kvm");
        MigrationDestination d = MigrationDestination.listen(rt, LoopbackMigrationTest.loopback(), opts)) {
      CompletableFuture<MigrationDestination> accepted = LoopbackMigrationTest.acceptAsync(d);
      try (Child source = Child.start("source", Integer.toString(d.port()), Long.toString(SIZE), Long.toString(BPS))) {
        source.await("migrating");
        accepted.get(30, TimeUnit.SECONDS);
        // a demand fault while the source lives: served, with the source's content
        long probe = Guest.BASE + SIZE - 4096;
        assertEquals(filled((probe - Guest.BASE) / 4), d.vm().guestMemory().loadInt(probe));
        source.kill();
      }
      long t0 = System.nanoTime();
      Vcpu cpu = d.vcpus().get(0);
      GmemException e = expect(Errno.EIO, () -> d.run(cpu));
      long waited = System.nanoTime() - t0;
      assertTrue(waited < TimeUnit.SECONDS.toNanos(6), "failed within the recovery timeout plus the fault deadline: " + waited / 1e6 + " ms");
      assertTrue(e.getMessage().contains("source was lost") || e.getMessage().contains("not resolved within"), e.getMessage());
      assertTrue(d.paused(), "the VM is paused for good");
      GmemException again = expect(Errno.EIO, () -> d.run(cpu));
      assertTrue(again.getMessage().contains("VM paused"), again.getMessage());
      expect(Errno.EIO, () -> d.await(Duration.ofSeconds(5)));
      // every page is either the source's content or fails: never a zero in place of a missing page
      long missing = 0;
      for (long gpa = Guest.BASE; gpa < Guest.BASE + SIZE; gpa += 4096) {
        long g = gpa;
        if (d.pageServer().missing(gpa / 4096)) {
          missing++;
          expect(Errno.EIO, () -> d.vm().guestMemory().loadInt(g));
        } else {
          assertEquals(filled((gpa - Guest.BASE) / 4), d.vm().guestMemory().loadInt(gpa), "GPA 0x" + Long.toHexString(gpa));
        }
      }
      assertTrue(missing > 0, "the source died mid-stream");
    }
  }

  @Test
  void aKilledDestinationLeavesTheSourceOwningEveryPageAndTheGuestResumesThere() throws Exception {
    String cause = theSourceOwnsEveryPageAfter(Child::kill, SourceOptions.defaults(), 20);
    assertFalse(cause.contains("said nothing"), cause);
  }

  /**
   * A frozen destination (SIGSTOP) closes nothing: the source notices its silence (no KEEPALIVE for
   * max(2 s, connect and recovery timeouts)), breaks the link, finds it still unanswered on
   * reconnect and fails — without the keepalive it waited for ever.
   */
  @Test
  void aFrozenDestinationIsNoticedAndTheSourceStillOwnsEveryPage() throws Exception {
    String cause = theSourceOwnsEveryPageAfter(Child::freeze, SourceOptions.defaults().withConnectTimeout(Duration.ofSeconds(1)), 15);
    assertTrue(cause.contains("the destination said nothing for"), cause);
  }

  /**
   * Migrates a real guest to a destination child, does {@code toDestination} to it once the guest
   * runs there, and checks that the migration fails within {@code seconds} with the source owning
   * every page, untouched, and the guest resuming on the source; the failure's message.
   */
  private static String theSourceOwnsEveryPageAfter(ChildAction toDestination, SourceOptions options, int seconds) throws Exception {
    String message;
    try (GmemRuntime rt = Backends.open("kvm"); Child destination = Child.start("destination", Long.toString(SIZE))) {
      int port = Integer.parseInt(destination.await("port"));
      Vm vm = Guest.vm(rt, SIZE);
      try (Vcpu cpu = vm.createVcpu(0)) {
        Guest.fill(cpu);
        byte[] before = Guest.digest(vm);
        try (MigrationSource s = MigrationSource.start(vm, List.of(cpu), "127.0.0.1", port,
            options.withMaxStreamBandwidth(BPS).withRecoveryTimeout(Duration.ofSeconds(1)))) {
          destination.await("faulted"); // the guest runs there and faulted pages in
          toDestination.accept(destination);
          GmemException e = expect(Errno.EIO, () -> s.await(Duration.ofSeconds(seconds)));
          message = e.getMessage();
          assertTrue(message.contains("the source still owns every page"), message);
          assertTrue(s.failed());
          assertFalse(s.completed());
        }
        assertArrayEquals(before, Guest.digest(vm), "the source's memory is untouched");
        VcpuExit.Io io = assertInstanceOf(VcpuExit.Io.class, cpu.run(), "the guest resumes on the source");
        assertEquals(Guest.SUM_PORT, io.port());
        assertEquals(Guest.expectedSum(SIZE), ByteBuffer.wrap(io.data()).order(ByteOrder.LITTLE_ENDIAN).getInt());
      }
      vm.close();
    }
    return message;
  }

  /** Something done to a child that may fail. */
  interface ChildAction {
    void accept(Child c) throws Exception;
  }
}
