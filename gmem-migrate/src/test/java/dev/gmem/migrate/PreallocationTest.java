package dev.gmem.migrate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.GmemRuntime;
import dev.gmem.api.Vcpu;
import dev.gmem.api.Vm;
import dev.gmem.core.conformance.Backends;
import dev.gmem.userfault.Userfault;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * The destination allocates its memory ahead of the stream, and an allocated page is still a
 * missing one: it reads the source's bytes (asked for on the demand channel), never the zeros the
 * allocation left in it.
 */
class PreallocationTest {
  static final long SIZE = 512L << 10;

  @Test
  void preallocatedPagesStayMissingUntilTheirDataArrivesAndNeverReadAsZeros() throws Exception {
    try (GmemRuntime a = Backends.open("kvm"); GmemRuntime b = Backends.open("kvm")) {
      Vm vm = Guest.vm(a, SIZE);
      try (Vcpu cpu = vm.createVcpu(0)) {
        Guest.fill(cpu);
        byte[] before = Guest.digest(vm);
        long last = Guest.BASE + SIZE - Guest.PAGE;
        long want = vm.guestMemory().loadLong(last + 8);
        assertNotEquals(0, want, "the guest filled the page: zeros would show");
        try (MigrationDestination d = MigrationDestination.listen(b, LoopbackMigrationTest.loopback(), DestinationOptions.defaults())) {
          CompletableFuture<MigrationDestination> accepted = LoopbackMigrationTest.acceptAsync(d);
          // 512 KiB/s: the stream reaches the last page ~3 s in, long after the allocation is done
          try (MigrationSource s = MigrationSource.start(vm, List.of(cpu), "127.0.0.1", d.port(),
              SourceOptions.defaults().withMaxStreamBandwidth(512 << 10))) {
            accepted.get();
            assertEquals(Guest.BASE + SIZE, d.preallocator().await(30_000), "every byte of the memslot allocated ahead of the stream");
            Userfault uf = b.feature(Userfault.class).orElseThrow();
            assertTrue(uf.isMissing(d.vm(), last), "allocated, yet still missing: its data has not arrived");
            assertEquals(want, d.vm().guestMemory().loadLong(last + 8), "the source's bytes, fetched on demand — not the allocation's zeros");
            d.await(Duration.ofSeconds(60));
            s.await(Duration.ofSeconds(60));
            assertArrayEquals(before, Guest.digest(d.vm()), "every page identical");
          }
        }
      }
    }
  }
}
