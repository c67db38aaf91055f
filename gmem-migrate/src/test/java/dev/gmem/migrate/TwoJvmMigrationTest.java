package dev.gmem.migrate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.GmemRuntime;
import dev.gmem.api.VcpuExit;
import dev.gmem.core.conformance.Backends;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** A real KVM guest migrates from another JVM to this one over loopback and continues with every page identical. */
class TwoJvmMigrationTest {
  static final long SIZE = 256L << 10;

  @Test
  void aRealGuestFromAnotherJvmContinuesHereWithEveryPageIdentical() throws Exception {
    try (GmemRuntime rt = Backends.open("kvm");
        MigrationDestination d = MigrationDestination.listen(rt, LoopbackMigrationTest.loopback(),
            DestinationOptions.defaults())) {
      CompletableFuture<MigrationDestination> accepted = LoopbackMigrationTest.acceptAsync(d);
      try (Child source = Child.start("source", Integer.toString(d.port()), Long.toString(SIZE), Long.toString(256L << 10))) {
        String digest = source.await("digest");
        source.await("migrating");
        accepted.get(30, TimeUnit.SECONDS);
        VcpuExit.Io io = assertInstanceOf(VcpuExit.Io.class, d.run(d.vcpus().get(0)));
        assertEquals(Guest.SUM_PORT, io.port());
        assertEquals(Guest.expectedSum(SIZE), ByteBuffer.wrap(io.data()).order(ByteOrder.LITTLE_ENDIAN).getInt(), "the guest's own checksum");
        MigrationStats st = d.await(Duration.ofSeconds(60));
        assertEquals("", source.await("done"), "the source saw the completion acknowledgement");
        assertEquals(digest, Guest.hex(Guest.digest(d.vm())), "every page identical to the source JVM's");
        assertTrue(st.demandRequests() > 0, st.summary());
      }
    }
  }
}
