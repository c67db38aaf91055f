package dev.gmem.migrate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.core.conformance.Backends;
import dev.gmem.userfault.Userfault;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/** A real KVM guest migrates between two runtimes over loopback TCP and continues with identical memory. */
class LoopbackMigrationTest {
  static final long SIZE = 256L << 10;

  /** {@link MigrationDestination#accept} on another thread, for a source started on this one. */
  static CompletableFuture<MigrationDestination> acceptAsync(MigrationDestination d) {
    return CompletableFuture.supplyAsync(() -> {
      try {
        return d.accept();
      } catch (java.io.IOException e) {
        throw new java.io.UncheckedIOException(e); // a refusal (GmemException) reaches the caller as itself
      }
    });
  }

  static InetSocketAddress loopback() {
    return new InetSocketAddress(InetAddress.getLoopbackAddress(), 0);
  }

  /** Nice values of this process's threads whose kernel name (15 characters) starts with {@code prefix}. */
  static List<Integer> nice(String prefix) throws java.io.IOException {
    List<Integer> nice = new ArrayList<>();
    try (java.util.stream.Stream<java.nio.file.Path> tasks = java.nio.file.Files.list(java.nio.file.Path.of("/proc/self/task"))) {
      for (java.nio.file.Path t : (Iterable<java.nio.file.Path>) tasks::iterator) {
        try {
          if (java.nio.file.Files.readString(t.resolve("comm")).strip().startsWith(prefix)) {
            String stat = java.nio.file.Files.readString(t.resolve("stat"));
            String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
            nice.add(Integer.parseInt(f[16])); // field 19 of stat: nice
          }
        } catch (java.nio.file.NoSuchFileException gone) {
          // a thread that ended meanwhile
        }
      }
    }
    return nice;
  }

  /**
   * Both sides' stream threads ("gmem-migrate-stream", "-stream-rx", and the destination's install
   * stage "gmem-migrate-install") run {@link
   * SourceLink#STREAM_NICE} nice steps below the process, the demand threads at the process's
   * nice: a woken demand thread preempts the stream where it keeps every core busy.
   */
  static void assertStreamThreadsRunInTheBackground() throws Exception {
    String self = java.nio.file.Files.readString(java.nio.file.Path.of("/proc/self/stat"));
    int base = Integer.parseInt(self.substring(self.lastIndexOf(')') + 2).split(" ")[16]);
    int background = Math.min(19, base + SourceLink.STREAM_NICE);
    List<Integer> stream = List.of();
    List<Integer> install = List.of();
    List<Integer> demand = List.of();
    // each thread sets its own nice value once it runs: wait (bounded) for all six to be up
    for (long until = System.nanoTime() + 5_000_000_000L; System.nanoTime() < until; Thread.sleep(10)) {
      stream = nice("gmem-migrate-st");
      install = nice("gmem-migrate-in"); // comm keeps 15 characters
      demand = nice("gmem-migrate-de");
      if (stream.size() == 2 && stream.stream().allMatch(n -> n == background) && List.of(background).equals(install) && demand.size() == 3) {
        break;
      }
    }
    assertEquals(List.of(background, background), stream, "the two stream threads' nice values");
    assertEquals(List.of(background), install, "the destination's install stage runs with the stream");
    assertEquals(3, demand.size(), "source's demand server, destination's demand sender and reader");
    assertTrue(demand.stream().allMatch(n -> n == base), "demand threads keep the process's nice " + base + ": " + demand);
  }

  @Test
  void aRealGuestContinuesOnTheDestinationWithEveryPageIdentical() throws Exception {
    try (GmemRuntime a = Backends.open("kvm"); GmemRuntime b = Backends.open("kvm")) {
      Vm vm = Guest.vm(a, SIZE);
      try (Vcpu cpu = vm.createVcpu(0)) {
        Guest.fill(cpu);
        byte[] before = Guest.digest(vm);
        Duration runtimeDeadline = b.feature(Userfault.class).orElseThrow().deadline();
        List<GuestMemFile> made = new ArrayList<>();
        try (MigrationDestination d = MigrationDestination.listen(b, loopback(), DestinationOptions.defaults().withFaultDeadline(runtimeDeadline.plusSeconds(7)))) {
          CompletableFuture<MigrationDestination> accepted = acceptAsync(d);
          try (MigrationSource s = MigrationSource.start(vm, List.of(cpu), "127.0.0.1", d.port(),
              SourceOptions.defaults().withMaxStreamBandwidth(128 << 10))) {
            accepted.get();
            assertEquals(runtimeDeadline, b.feature(Userfault.class).orElseThrow().deadline(),
                "the destination's fault deadline is its VM's own: the runtime-wide one stays");
            assertStreamThreadsRunInTheBackground();
            VcpuExit.Io io = assertInstanceOf(VcpuExit.Io.class, d.run(d.vcpus().get(0)), "the guest continued on the destination");
            assertEquals(Guest.SUM_PORT, io.port());
            assertEquals(Guest.expectedSum(SIZE), ByteBuffer.wrap(io.data()).order(ByteOrder.LITTLE_ENDIAN).getInt(),
                "the guest's own checksum of the migrated memory");
            MigrationStats ds = d.await(Duration.ofSeconds(30));
            MigrationStats ss = s.await(Duration.ofSeconds(30));
            assertTrue(s.completed());
            assertArrayEquals(before, Guest.digest(d.vm()), "every page identical");
            assertTrue(d.vm().memslots().stream().allMatch(m -> (m.flags() & Userfault.MEM_USERFAULT) == 0),
                "post-copy is over: no memslot keeps KVM_MEM_USERFAULT (4 KiB mappings, slow access path)");
            Userfault uf = b.feature(Userfault.class).orElseThrow();
            uf.bitmap(d.vm(), 0).set(Guest.BASE / Guest.PAGE);
            assertNull(d.vm().softwareVcpu().read(Guest.BASE, new byte[1], 0, 1, false),
                "without the flag a bitmap bit no longer turns a guest access into a userfault exit");
            uf.bitmap(d.vm(), 0).clear(Guest.BASE / Guest.PAGE); // host accesses still honour a set bit
            assertArrayEquals(before, Guest.digest(d.vm()), "memory still identical once the flag is gone");
            assertEquals((Guest.BASE + SIZE) / 4096, ds.pages());
            assertTrue(ds.demandRequests() > 0, "the guest faulted pages in: " + ds.summary());
            // A request can cross the page on the stream (or COMPLETE): the source may never see
            // it, which is harmless (every page identical above); it never serves one not asked for.
            assertTrue(ss.demandRequests() > 0 && ss.demandRequests() <= ds.demandRequests(),
                "requests served " + ss.demandRequests() + " of " + ds.demandRequests() + " sent");
            assertTrue(ss.streamBytes() > 0, ss.summary());
            System.out.println(ds.summary());
            d.vm().memslots().forEach(m -> made.add(m.file()));
          }
        }
        assertFalse(made.isEmpty());
        assertTrue(made.stream().noneMatch(GuestMemFile::isOpen),
            "closing the destination closes the files it made: a closed VM's memory would stay until the runtime closes");
      }
      vm.close();
    }
  }
}
