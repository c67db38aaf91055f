package dev.gmem.migrate;

import static dev.gmem.migrate.LoopbackMigrationTest.loopback;
import static dev.gmem.core.conformance.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.userfault.Userfault;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import dev.gmem.migrate.wire.Frames;
import dev.gmem.migrate.wire.Handshake;
import dev.gmem.migrate.wire.Wire;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Private memory migrates through gmem with its shareability: private pages are read by the
 * source's software vCPU (a private access) and written the same way on the destination — never by
 * a raw host access — and stay private there. TDX and SNP are refused in the handshake.
 */
class PrivateMemoryTest {
  static final long PAGES = 64;
  static final int PAGE = Pages.PAGE;

  static CompletableFuture<MigrationDestination> acceptAsync(MigrationDestination d) {
    return CompletableFuture.supplyAsync(() -> {
      try {
        return d.accept();
      } catch (java.io.IOException e) {
        throw new IllegalStateException(e);
      }
    });
  }

  @ParameterizedTest
  @EnumSource(value = VmType.class, names = {"SW_PROTECTED", "PKVM"})
  void privatePagesMigrateWithTheirShareabilityAndStayPrivate(VmType type) throws Exception {
    try (GmemRuntime a = Backends.open("kvm"); GmemRuntime b = Backends.open("kvm")) {
      Vm vm = a.createVm(type);
      GuestMemFile f = vm.createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, PAGES * PAGE, f, 0);
      // SW_PROTECTED: the first half shared, the rest private. pKVM: all private (only the guest
      // can share a page with the host, by hypercall; the host cannot convert one it never gave).
      long shared = type == VmType.PKVM ? 0 : PAGES / 2;
      if (shared > 0) {
        f.setShareability(0, shared * PAGE, Shareability.SHARED);
      }
      for (long g = 0; g < PAGES; g++) {
        if (g < shared) {
          vm.guestMemory().write(g * PAGE, Pages.content(g), 0, PAGE);
        } else {
          assertNull(vm.softwareVcpu().write(g * PAGE, Pages.content(g), 0, PAGE, true));
        }
      }
      try (MigrationDestination d = MigrationDestination.listen(b, loopback(), DestinationOptions.defaults())) {
        CompletableFuture<MigrationDestination> accepted = acceptAsync(d);
        try (MigrationSource s = MigrationSource.start(vm, List.of(), "127.0.0.1", d.port(), SourceOptions.defaults())) {
          accepted.get(30, TimeUnit.SECONDS);
          // a private page faulted in on demand by a private guest access, before the stream is done
          byte[] first = new byte[PAGE];
          assertNull(privateRead(d.vm(), b, (PAGES - 1) * PAGE, first));
          assertArrayEquals(Pages.content(PAGES - 1), first);
          d.await(Duration.ofSeconds(30));
          s.await(Duration.ofSeconds(30));
        }
        Vm dst = d.vm();
        GuestMemFile df = dst.memslots().get(0).file();
        assertEquals(type, dst.type());
        assertEquals(f.inode().shareabilityRanges(0, PAGES), df.inode().shareabilityRanges(0, PAGES), "shareability migrated");
        byte[] page = new byte[PAGE];
        for (long g = 0; g < PAGES; g++) {
          if (g < shared) {
            dst.guestMemory().read(g * PAGE, page, 0, PAGE);
          } else {
            assertNull(dst.softwareVcpu().read(g * PAGE, page, 0, PAGE, true));
            long gpa = g * PAGE;
            expect(Errno.EFAULT, () -> dst.guestMemory().loadLong(gpa)); // still private: the host cannot read it
          }
          assertArrayEquals(Pages.content(g), page, "GFN " + g);
        }
      }
      vm.close();
    }
  }

  /** A private read by the software vCPU as a VMM does it: a USERFAULT exit waits for its page, then the access is retried. */
  static VcpuExit privateRead(Vm vm, GmemRuntime rt, long gpa, byte[] into) {
    Userfault uf = rt.feature(Userfault.class).orElseThrow();
    while (true) {
      VcpuExit exit = vm.softwareVcpu().read(gpa, into, 0, into.length, true);
      if (exit instanceof VcpuExit.MemoryFault m && (m.flags() & Userfault.EXIT_FLAG_USERFAULT) != 0) {
        uf.await(vm, m.gpa());
        continue;
      }
      return exit;
    }
  }

  @ParameterizedTest
  @EnumSource(value = VmType.class, names = {"TDX", "SNP"})
  void tdxAndSnpAreRefusedInTheHandshakeWithEopnotsupp(VmType type) throws Exception {
    try (GmemRuntime a = Backends.open("kvm"); GmemRuntime b = Backends.open("kvm")) {
      Vm vm = a.createVm(type);
      try (MigrationDestination d = MigrationDestination.listen(b, loopback(), DestinationOptions.defaults())) {
        CompletableFuture<MigrationDestination> accepted = acceptAsync(d);
        GmemException e = expect(Errno.EOPNOTSUPP, () -> MigrationSource.start(vm, List.of(), "127.0.0.1", d.port(), SourceOptions.defaults()));
        assertTrue(e.getMessage().contains("refused") && e.getMessage().contains(type.name()), e.getMessage());
        assertTrue(e.getMessage().contains(type == VmType.TDX ? "migration TD" : "migration agent"), e.getMessage());
        java.util.concurrent.ExecutionException thrown = org.junit.jupiter.api.Assertions.assertThrows(
            java.util.concurrent.ExecutionException.class, () -> accepted.get(30, TimeUnit.SECONDS));
        assertEquals(Errno.EOPNOTSUPP, ((GmemException) thrown.getCause()).errno());
        assertNull(d.vm(), "nothing was created");
      }
      vm.close();
    }
  }

  @Test
  void aHandshakeFromAnotherArchOrVersionIsRefusedWithNothingCreated() throws Exception {
    var hs = new Handshake(VmType.DEFAULT, "riscv64", List.of(), List.of(), List.of());
    assertEquals(hs, Handshake.decode(hs.encode()), "the handshake round-trips");
    try (GmemRuntime b = Backends.open("kvm");
        MigrationDestination d = MigrationDestination.listen(b, loopback(), DestinationOptions.defaults())) {
      CompletableFuture<MigrationDestination> accepted = acceptAsync(d);
      try (Frames f = Frames.connect("127.0.0.1", d.port(), 5000)) {
        f.hello(Wire.KIND_MAIN, 0);
        f.handshake(hs.encode());
        assertEquals(Wire.REFUSE, f.readType());
        assertEquals(Errno.EINVAL.code(), f.readInt());
        assertTrue(f.readUtf(f.readInt()).contains("riscv64"));
      }
      assertThrows(java.util.concurrent.ExecutionException.class, () -> accepted.get(30, TimeUnit.SECONDS));
      assertNull(d.vm());
      // a peer speaking another version is not answered with anything but a closed connection
      CompletableFuture<MigrationDestination> again = acceptAsync(d);
      try (java.nio.channels.SocketChannel ch = java.nio.channels.SocketChannel.open(new InetSocketAddress("127.0.0.1", d.port()))) {
        java.nio.ByteBuffer hello = java.nio.ByteBuffer.allocate(Wire.HELLO_BYTES).putInt(Wire.MAGIC).putShort((short) 99).put(Wire.KIND_MAIN).putLong(0).flip();
        ch.write(hello);
        assertEquals(-1, ch.read(java.nio.ByteBuffer.allocate(1)), "closed");
      }
      assertTrue(!again.isDone(), "still listening for a real source");
    }
  }
}
