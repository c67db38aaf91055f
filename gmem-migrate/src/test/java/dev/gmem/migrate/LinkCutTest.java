package dev.gmem.migrate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.GmemRuntime;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/**
 * Postcopy recovery: a proxy cuts the link at random points, mid-message included, at least 100
 * times while the destination faults pages in; the source reconnects each time and streams exactly
 * what the destination reports missing. Every read during the storm sees its page's content (never
 * zero, never stale), and the final memory is identical.
 */
class LinkCutTest {
  static final long PAGES = 1024;

  @Test
  void aHundredCutsAtRandomPointsLoseNothing() throws Exception {
    long seed = new Random().nextLong();
    try (GmemRuntime a = Backends.open("kvm"); GmemRuntime b = Backends.open("kvm")) {
      Vm vm = Pages.vm(a, VmType.DEFAULT, PAGES);
      DestinationOptions dopts = DestinationOptions.defaults().withRecoveryTimeout(Duration.ofSeconds(10)).withFaultDeadline(Duration.ofSeconds(20));
      try (MigrationDestination d = MigrationDestination.listen(b, LoopbackMigrationTest.loopback(), dopts);
          CuttingProxy proxy = new CuttingProxy(new InetSocketAddress(InetAddress.getLoopbackAddress(), d.port()), seed, 100, 48 << 10)) {
        CompletableFuture<MigrationDestination> accepted = LoopbackMigrationTest.acceptAsync(d);
        try (MigrationSource s = MigrationSource.start(vm, List.of(), "127.0.0.1", proxy.port(),
            SourceOptions.defaults().withRecoveryTimeout(Duration.ofSeconds(10)))) {
          accepted.get();
          proxy.arm();
          AtomicBoolean stop = new AtomicBoolean();
          AtomicLong reads = new AtomicLong();
          List<CompletableFuture<Void>> readers = new ArrayList<>();
          for (int t = 0; t < 2; t++) {
            Random r = new Random(seed + t);
            readers.add(CompletableFuture.runAsync(() -> {
              byte[] page = new byte[Pages.PAGE];
              while (!stop.get()) {
                long g = r.nextInt((int) PAGES);
                d.vm().guestMemory().read(g * Pages.PAGE, page, 0, page.length);
                assertArrayEquals(Pages.content(g), page, "GFN " + g + " (seed " + seed + ")");
                reads.incrementAndGet();
              }
            }));
          }
          MigrationStats ds = d.await(Duration.ofSeconds(60));
          s.await(Duration.ofSeconds(30));
          stop.set(true);
          for (CompletableFuture<Void> r : readers) {
            r.get();
          }
          assertTrue(proxy.cuts() >= 100, "cuts: " + proxy.cuts() + " (seed " + seed + ")");
          assertTrue(ds.reconnects() > 0, ds.summary());
          assertTrue(reads.get() > 0);
          byte[] page = new byte[Pages.PAGE];
          for (long g = 0; g < PAGES; g++) {
            d.vm().guestMemory().read(g * Pages.PAGE, page, 0, page.length);
            assertArrayEquals(Pages.content(g), page, "GFN " + g + " (seed " + seed + ")");
          }
          assertEquals(PAGES, d.pageServer().residentPages());
          System.out.println("cuts " + proxy.cuts() + ", reads " + reads.get() + "\n" + ds.summary());
        }
      }
      vm.close();
    }
  }
}
