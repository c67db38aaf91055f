package dev.gmem.migrate;

import static dev.gmem.migrate.LoopbackMigrationTest.acceptAsync;
import static dev.gmem.migrate.LoopbackMigrationTest.loopback;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.ShareabilityRange;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import dev.gmem.migrate.wire.Frames;
import dev.gmem.migrate.wire.Handshake;
import dev.gmem.migrate.wire.Wire;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.channels.ServerSocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * What a hostile peer or user does to a migration: a handshake declaring more memory than the host
 * has, a silent connection holding the listener, a destination that never answers, a destination's
 * MISSING list with more pages than the VM or pages outside it, options out of range, a port in
 * use, a runtime closed under a destination. Each ends with a clear error and nothing left behind.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class HostileMigrationTest {
  static final int PAGE = Wire.PAGE;
  static final int PAGES = 16;

  static long fds(String what) throws IOException {
    long n = 0;
    try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
      for (Path p : (Iterable<Path>) fds::iterator) {
        try {
          if (Files.readSymbolicLink(p).toString().contains(what)) {
            n++;
          }
        } catch (IOException gone) {
          // the listing's own fd
        }
      }
    }
    return n;
  }

  static java.util.Set<Thread> threads(String prefix) {
    return Thread.getAllStackTraces().keySet().stream().filter(t -> t.isAlive() && t.getName().startsWith(prefix))
        .collect(java.util.stream.Collectors.toSet());
  }

  /** Threads named {@code prefix} alive now that were not in {@code before}. */
  static java.util.Set<Thread> started(String prefix, java.util.Set<Thread> before) {
    java.util.Set<Thread> now = threads(prefix);
    now.removeAll(before);
    return now;
  }

  @Test
  void aHandshakeDeclaringMoreMemoryThanTheHostHasIsRefusedWithEnomemBeforeAnythingIsCreated() throws Exception {
    long huge = 1L << 40; // 1 TiB: a valid memslot and file here, 2^28 pages of bookkeeping, 40 times this host's RAM
    Handshake hs = new Handshake(VmType.DEFAULT, System.getProperty("os.arch"),
        List.of(new Handshake.FileInfo(GmemFlags.MMAP | GmemFlags.INIT_SHARED, huge, List.of(new ShareabilityRange(0, huge / PAGE, Shareability.SHARED)))),
        List.of(new Handshake.SlotInfo(0, Memslot.GUEST_MEMFD, 0, huge, 0, 0)), List.of());
    try (GmemRuntime rt = Backends.open("kvm");
        MigrationDestination d = MigrationDestination.listen(rt, loopback(), DestinationOptions.defaults())) {
      long vms = fds("kvm-vm");
      CompletableFuture<MigrationDestination> accepted = acceptAsync(d);
      try (Frames f = Frames.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), d.port()), 2000)) {
        f.hello(Wire.KIND_MAIN, 0);
        f.handshake(hs.encode());
        assertEquals(Wire.REFUSE, f.readType(), "refused, with the errno");
        int errno = f.readInt();
        String why = f.readUtf(f.readInt());
        assertEquals(Errno.ENOMEM, Errno.of(errno), why);
        assertTrue(why.contains("bytes"), why);
      }
      Throwable t = assertThrows(java.util.concurrent.ExecutionException.class, () -> accepted.get(20, TimeUnit.SECONDS)).getCause();
      assertEquals(Errno.ENOMEM, assertInstanceOf(GmemException.class, t).errno());
      assertEquals(vms, fds("kvm-vm"), "no VM was created");
    }
  }

  @Test
  void aRefusedHandshakeGivesBackTheRuntimesFaultDeadline() throws Exception {
    long size = (long) PAGES * PAGE;
    try (GmemRuntime rt = Backends.open("kvm");
        MigrationDestination d = MigrationDestination.listen(rt, loopback(), DestinationOptions.defaults().withFaultDeadline(Duration.ofMillis(1234)))) {
      dev.gmem.userfault.Userfault uf = rt.feature(dev.gmem.userfault.Userfault.class).orElseThrow();
      Duration before = uf.deadline();
      Handshake.VcpuState bad;
      try (Vm scratch = rt.createVm(VmType.DEFAULT); dev.gmem.api.Vcpu c = scratch.createVcpu(0)) {
        bad = new Handshake.VcpuState(1 << 20, c.registers(), c.specialRegisters()); // no such vCPU id: refused after the memory was set up
      }
      Handshake hs = new Handshake(VmType.DEFAULT, System.getProperty("os.arch"),
          List.of(new Handshake.FileInfo(GmemFlags.MMAP | GmemFlags.INIT_SHARED, size, List.of(new ShareabilityRange(0, PAGES, Shareability.SHARED)))),
          List.of(new Handshake.SlotInfo(0, Memslot.GUEST_MEMFD, 0, size, 0, 0)), List.of(bad));
      CompletableFuture<MigrationDestination> accepted = acceptAsync(d);
      try (Frames f = Frames.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), d.port()), 2000)) {
        f.hello(Wire.KIND_MAIN, 0);
        f.handshake(hs.encode());
        assertEquals(Wire.REFUSE, f.readType(), "refused");
      }
      assertThrows(java.util.concurrent.ExecutionException.class, () -> accepted.get(20, TimeUnit.SECONDS));
      assertEquals(before, uf.deadline(), "a refused migration changed the runtime's fault deadline");
    }
  }

  @Test
  void aSilentConnectionDoesNotHoldTheListenerForever() throws Exception {
    try (GmemRuntime a = Backends.open("kvm"); GmemRuntime b = Backends.open("kvm");
        MigrationDestination d = MigrationDestination.listen(b, loopback(),
            DestinationOptions.defaults().withRecoveryTimeout(Duration.ofMillis(500)));
        Socket silent = new Socket(InetAddress.getLoopbackAddress(), d.port())) {
      CompletableFuture<MigrationDestination> accepted = acceptAsync(d);
      Vm vm = Pages.vm(a, VmType.DEFAULT, PAGES);
      try (MigrationSource s = MigrationSource.start(vm, List.of(), "127.0.0.1", d.port(), SourceOptions.defaults())) {
        accepted.get(20, TimeUnit.SECONDS);
        d.await(Duration.ofSeconds(20));
        s.await(Duration.ofSeconds(20));
        for (long g = 0; g < PAGES; g++) {
          byte[] got = new byte[PAGE];
          d.vm().guestMemory().read(g * PAGE, got, 0, PAGE);
          assertArrayEquals(Pages.content(g), got, "page " + g);
        }
      }
      vm.close();
    }
  }

  @Test
  void silentConnectionsDuringAMigrationHoldNoThread() throws Exception {
    try (GmemRuntime a = Backends.open("kvm"); GmemRuntime b = Backends.open("kvm");
        MigrationDestination d = MigrationDestination.listen(b, loopback(),
            DestinationOptions.defaults().withRecoveryTimeout(Duration.ofMillis(500)))) {
      CompletableFuture<MigrationDestination> accepted = acceptAsync(d);
      Vm vm = Pages.vm(a, VmType.DEFAULT, PAGES);
      try (MigrationSource s = MigrationSource.start(vm, List.of(), "127.0.0.1", d.port(), SourceOptions.defaults())) {
        accepted.get(20, TimeUnit.SECONDS);
        d.await(Duration.ofSeconds(20));
        java.util.Set<Thread> before = threads("gmem-migrate-greet");
        List<Socket> silent = new java.util.ArrayList<>();
        for (int i = 0; i < 5; i++) {
          silent.add(new Socket(InetAddress.getLoopbackAddress(), d.port()));
        }
        long until = System.nanoTime() + 10_000_000_000L;
        Thread.sleep(200);
        while (!started("gmem-migrate-greet", before).isEmpty() && System.nanoTime() < until) {
          Thread.sleep(20);
        }
        assertEquals(java.util.Set.of(), started("gmem-migrate-greet", before), "each silent connection's greeter gave up");
        for (Socket k : silent) {
          k.close();
        }
      }
      vm.close();
    }
  }

  @Test
  void aDestinationThatNeverAnswersTheHandshakeFailsTheStartInsteadOfHangingIt() throws Exception {
    try (GmemRuntime a = Backends.open("kvm"); ServerSocketChannel mute = ServerSocketChannel.open().bind(loopback())) {
      Vm vm = Pages.vm(a, VmType.DEFAULT, PAGES);
      int port = ((InetSocketAddress) mute.getLocalAddress()).getPort();
      SourceOptions opts = SourceOptions.defaults().withRecoveryTimeout(Duration.ofMillis(300));
      long t0 = System.nanoTime();
      IOException e = assertThrows(IOException.class, () -> MigrationSource.start(vm, List.of(), "127.0.0.1", port, opts));
      assertTrue(e.getMessage() != null && e.getMessage().contains("answer"), String.valueOf(e));
      assertTrue(System.nanoTime() - t0 < 15_000_000_000L);
      vm.close();
    }
  }

  /** A fake destination: accepts the handshake and the demand channel, then sends {@code missing} on main. */
  static void fakeDestination(ServerSocketChannel l, long[] missing) throws IOException {
    Frames main = new Frames(l.accept());
    main.readHello();
    main.readType();
    main.readBytes(main.readInt());
    main.accept(42);
    Frames demand = new Frames(l.accept());
    demand.readHello();
    main.missing(missing);
    // keep both open: a source that accepts this order streams and waits, it never fails
    while (true) {
      java.nio.channels.SocketChannel c = l.accept(); // a RESUME: refuse it
      Frames r = new Frames(c);
      r.readHello();
      r.refuse(Errno.EINVAL.code(), "fake destination");
      r.close();
    }
  }

  @Test
  void aMissingListWithMorePagesThanTheVmOrPagesOutsideItIsAProtocolError() throws Exception {
    for (long[] missing : List.of(new long[PAGES + 1], new long[] {0xdead_beefL})) {
      try (GmemRuntime a = Backends.open("kvm"); ServerSocketChannel l = ServerSocketChannel.open().bind(loopback())) {
        Vm vm = Pages.vm(a, VmType.DEFAULT, PAGES);
        Thread fake = new Thread(() -> {
          try {
            fakeDestination(l, missing);
          } catch (IOException closed) {
            // test over
          }
        }, "fake-destination");
        fake.setDaemon(true);
        fake.start();
        int port = ((InetSocketAddress) l.getLocalAddress()).getPort();
        try (MigrationSource s = MigrationSource.start(vm, List.of(), "127.0.0.1", port,
            SourceOptions.defaults().withRecoveryTimeout(Duration.ofMillis(300)).withBackground(false))) {
          GmemException e = assertThrows(GmemException.class, () -> s.await(Duration.ofSeconds(10)), "fails, does not wait for ever");
          assertEquals(Errno.EIO, e.errno());
          assertInstanceOf(Frames.ProtocolException.class, e.getCause(), "the destination broke the protocol: " + e.getCause());
        }
        vm.close();
      }
    }
  }

  @Test
  void optionsOutOfRangeNameTheirField() {
    Duration bad = Duration.ofSeconds(-1);
    assertTrue(assertThrows(IllegalArgumentException.class, () -> DestinationOptions.defaults().withRecoveryTimeout(bad))
        .getMessage().contains("recoveryTimeout"));
    assertTrue(assertThrows(IllegalArgumentException.class, () -> DestinationOptions.defaults().withFaultDeadline(Duration.ZERO))
        .getMessage().contains("faultDeadline"));
    assertTrue(assertThrows(IllegalArgumentException.class, () -> SourceOptions.defaults().withRecoveryTimeout(bad))
        .getMessage().contains("recoveryTimeout"));
    assertTrue(assertThrows(IllegalArgumentException.class, () -> SourceOptions.defaults().withMaxStreamBandwidth(-5))
        .getMessage().contains("maxStreamBytesPerSecond"));
    assertTrue(assertThrows(IllegalArgumentException.class,
        () -> new SourceOptions(List.of(), Duration.ofSeconds(1), Duration.ZERO, 0, true)).getMessage().contains("connectTimeout"));
    assertThrows(NullPointerException.class, () -> DestinationOptions.defaults().withRecoveryTimeout(null));
  }

  @Test
  void aPortInUseIsTheBindErrorAndLeavesNoSocket() throws Exception {
    try (GmemRuntime rt = Backends.open("memfd"); ServerSocketChannel taken = ServerSocketChannel.open().bind(loopback())) {
      long sockets = fds("socket:");
      assertThrows(java.net.BindException.class, () -> MigrationDestination.listen(rt, (InetSocketAddress) taken.getLocalAddress(),
          DestinationOptions.defaults()));
      assertEquals(sockets, fds("socket:"));
    }
  }

  @Test
  void aRuntimeClosedUnderAFinishedDestinationThenTheDestinationClosesQuietly() throws Exception {
    java.util.Set<Thread> before = threads("gmem-migrate");
    GmemRuntime a = Backends.open("kvm");
    GmemRuntime b = Backends.open("kvm");
    MigrationDestination d = MigrationDestination.listen(b, loopback(), DestinationOptions.defaults());
    CompletableFuture<MigrationDestination> accepted = acceptAsync(d);
    Vm vm = Pages.vm(a, VmType.DEFAULT, PAGES);
    MigrationSource s = MigrationSource.start(vm, List.of(), "127.0.0.1", d.port(), SourceOptions.defaults());
    accepted.get(20, TimeUnit.SECONDS);
    d.await(Duration.ofSeconds(20));
    s.await(Duration.ofSeconds(20));
    b.close();
    d.close();
    d.close();
    s.close();
    s.close();
    a.close();
    long until = System.nanoTime() + 5_000_000_000L;
    while (!started("gmem-migrate", before).isEmpty() && System.nanoTime() < until) {
      Thread.sleep(10);
    }
    assertEquals(java.util.Set.of(), started("gmem-migrate", before), "every migration thread ended");
  }
}
