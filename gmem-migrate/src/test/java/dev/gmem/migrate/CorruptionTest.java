package dev.gmem.migrate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * Nothing is installed unless it arrived intact: a proxy flips one bit inside the stream's first
 * RUN (its data, or its header at the given offset); the destination refuses the damaged page, the
 * link is recovered, and every page ends up identical to the source's.
 */
class CorruptionTest {
  static final int PAGE = 4096;
  /** No zero pages: the stream is all 64-page RUNs, so the offsets below land inside the first one. */
  static final long PAGES = 512;

  static byte[] content(long gfn) {
    ByteBuffer b = ByteBuffer.allocate(PAGE).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < PAGE; i += 8) {
      b.putLong(i, gfn * 0x9E3779B97F4A7C15L + i + 1);
    }
    return b.array();
  }

  @Test
  void aDamagedPageInARunIsNotInstalledAndArrivesAgainAfterRecovery() throws Exception {
    // 100 000 bytes into the first main connection: the 25th page of the first RUN's data
    migrateThroughFlip(100_000);
  }

  @Test
  void aDamagedRunHeaderIsRefusedToo() throws Exception {
    // 600 bytes in: past the hello and the handshake (a few hundred bytes for one memslot and no
    // vCPU), in the first RUN's header, CRC table or first page — wherever, it must be refused
    migrateThroughFlip(600);
  }

  private static void migrateThroughFlip(long offset) throws Exception {
    try (GmemRuntime a = Backends.open("kvm"); GmemRuntime b = Backends.open("kvm")) {
      Vm vm = a.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, PAGES * PAGE, f, 0);
      for (long g = 0; g < PAGES; g++) {
        vm.guestMemory().write(g * PAGE, content(g), 0, PAGE);
      }
      DestinationOptions dopts = DestinationOptions.defaults().withRecoveryTimeout(Duration.ofSeconds(10));
      try (MigrationDestination d = MigrationDestination.listen(b, LoopbackMigrationTest.loopback(), dopts);
          FlipProxy proxy = new FlipProxy(new InetSocketAddress(InetAddress.getLoopbackAddress(), d.port()), offset)) {
        CompletableFuture<MigrationDestination> accepted = LoopbackMigrationTest.acceptAsync(d);
        try (MigrationSource s = MigrationSource.start(vm, List.of(), "127.0.0.1", proxy.port(),
            SourceOptions.defaults().withRecoveryTimeout(Duration.ofSeconds(10)))) {
          accepted.get();
          MigrationStats ds = d.await(Duration.ofSeconds(60));
          s.await(Duration.ofSeconds(30));
          assertEquals(1, proxy.flips.get(), "one bit was flipped");
          assertTrue(ds.reconnects() > 0, "the damage broke the link, which was recovered: " + ds.summary());
          byte[] page = new byte[PAGE];
          for (long g = 0; g < PAGES; g++) {
            d.vm().guestMemory().read(g * PAGE, page, 0, PAGE);
            assertArrayEquals(content(g), page, "GFN " + g);
          }
        }
      }
      vm.close();
    }
  }

  /** Forwards faithfully, except one bit at {@code offset} of the first connection's source-to-destination bytes. */
  static final class FlipProxy implements AutoCloseable {
    final ServerSocketChannel listener;
    final AtomicInteger connections = new AtomicInteger();
    final AtomicInteger flips = new AtomicInteger();

    FlipProxy(InetSocketAddress target, long offset) throws IOException {
      listener = ServerSocketChannel.open().bind(LoopbackMigrationTest.loopback());
      Thread t = new Thread(() -> {
        while (listener.isOpen()) {
          try {
            SocketChannel from = listener.accept();
            SocketChannel to = SocketChannel.open(target);
            boolean first = connections.getAndIncrement() == 0;
            pump(from, to, first ? offset : -1);
            pump(to, from, -1);
          } catch (IOException e) {
            return;
          }
        }
      }, "flip-proxy");
      t.setDaemon(true);
      t.start();
    }

    int port() throws IOException {
      return ((InetSocketAddress) listener.getLocalAddress()).getPort();
    }

    private void pump(SocketChannel from, SocketChannel to, long flipAt) {
      Thread t = new Thread(() -> {
        ByteBuffer buf = ByteBuffer.allocate(16 << 10);
        long at = 0;
        try {
          while (from.read(buf.clear()) >= 0) {
            buf.flip();
            if (flipAt >= at && flipAt < at + buf.remaining()) {
              int i = (int) (flipAt - at);
              buf.put(i, (byte) (buf.get(i) ^ 0x10));
              flips.incrementAndGet();
            }
            at += buf.remaining();
            while (buf.hasRemaining()) {
              to.write(buf);
            }
          }
        } catch (IOException e) {
          // the other side closed
        }
        try {
          from.close();
          to.close();
        } catch (IOException ignored) {
          // closing
        }
      }, "flip-proxy-pump");
      t.setDaemon(true);
      t.start();
    }

    @Override
    public void close() throws IOException {
      listener.close();
    }
  }
}
