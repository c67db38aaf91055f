package dev.gmem.migrate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.GmemRuntime;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.core.conformance.Backends;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/** A real KVM guest migrates between two runtimes over loopback TCP and continues with identical memory. */
class LoopbackMigrationTest {
  static final long SIZE = 256L << 10;

  static InetSocketAddress loopback() {
    return new InetSocketAddress(InetAddress.getLoopbackAddress(), 0);
  }

  @Test
  void aRealGuestContinuesOnTheDestinationWithEveryPageIdentical() throws Exception {
    try (GmemRuntime a = Backends.open("kvm"); GmemRuntime b = Backends.open("kvm")) {
      Vm vm = Guest.vm(a, SIZE);
      try (Vcpu cpu = vm.createVcpu(0)) {
        Guest.fill(cpu);
        byte[] before = Guest.digest(vm);
        try (MigrationDestination d = MigrationDestination.listen(b, loopback(), DestinationOptions.defaults())) {
          CompletableFuture<MigrationDestination> accepted = CompletableFuture.supplyAsync(() -> {
            try {
              return d.accept();
            } catch (Exception e) {
              throw new IllegalStateException(e);
            }
          });
          try (MigrationSource s = MigrationSource.start(vm, List.of(cpu), "127.0.0.1", d.port(),
              SourceOptions.defaults().withMaxStreamBandwidth(128 << 10))) {
            accepted.get();
            VcpuExit.Io io = assertInstanceOf(VcpuExit.Io.class, d.run(d.vcpus().get(0)), "the guest continued on the destination");
            assertEquals(Guest.SUM_PORT, io.port());
            assertEquals(Guest.expectedSum(SIZE), ByteBuffer.wrap(io.data()).order(ByteOrder.LITTLE_ENDIAN).getInt(),
                "the guest's own checksum of the migrated memory");
            MigrationStats ds = d.await(Duration.ofSeconds(30));
            MigrationStats ss = s.await(Duration.ofSeconds(30));
            assertTrue(s.completed());
            assertArrayEquals(before, Guest.digest(d.vm()), "every page identical");
            assertEquals((Guest.BASE + SIZE) / 4096, ds.pages());
            assertTrue(ds.demandRequests() > 0, "the guest faulted pages in: " + ds.summary());
            assertEquals(ds.demandRequests(), ss.demandRequests(), "every request was served");
            assertTrue(ss.streamBytes() > 0, ss.summary());
            System.out.println(ds.summary());
          }
        }
      }
      vm.close();
    }
  }
}
