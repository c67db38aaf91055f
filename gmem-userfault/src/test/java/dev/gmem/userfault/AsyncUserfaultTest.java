package dev.gmem.userfault;

import static dev.gmem.core.conformance.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import dev.gmem.userfault.source.PageServer;
import dev.gmem.userfault.source.PageSink;
import dev.gmem.userfault.source.PageSource;
import dev.gmem.userfault.source.StreamingPageSource;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.LongStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Async userfault (non-vCPU accesses wait for the page, then EIO at the deadline), supervision of
 * page sources (a failed or killed source fails faults and pauses the VM for good), and "never a
 * zero page": every test's memory is non-zero content, so a zero read is a failure.
 */
class AsyncUserfaultTest {
  static final long PAGE = 4096;
  static final long PAGES = 32;

  static Stream<String> backends() {
    return Backends.names();
  }

  /** Page content that is never zero: the GFN in every long, plus one. */
  static byte[] content(long gfn) {
    ByteBuffer b = ByteBuffer.allocate((int) PAGE).order(java.nio.ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < PAGE; i += 8) {
      b.putLong(i, gfn * 1000 + i + 1);
    }
    return b.array();
  }

  /** A snapshot in memory; {@code killed} makes it stop serving, as a dead process would. */
  static class MemorySource extends StreamingPageSource {
    volatile boolean killed;
    final List<Long> served = new ArrayList<>();

    @Override
    protected List<Long> pages() {
      return LongStream.range(0, PAGES).boxed().toList();
    }

    @Override
    protected boolean read(long gfn, ByteBuffer into) throws Exception {
      while (killed) {
        Thread.sleep(1000);
      }
      synchronized (served) {
        served.add(gfn);
      }
      into.put(content(gfn));
      return true;
    }
  }

  static Vm vmWithSlot(GmemRuntime rt, int flags) {
    Vm vm = rt.createVm(VmType.DEFAULT);
    GuestMemFile f = vm.createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
    vm.setMemoryRegion(0, flags, 0, PAGES * PAGE, f, 0);
    return vm;
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aHostAccessWaitsForTheMissingPageAndSeesItsContent(String backend) throws Exception {
    try (GmemRuntime rt = Backends.open(backend)) {
      Userfault uf = rt.feature(Userfault.class).orElseThrow();
      Vm vm = vmWithSlot(rt, Memslot.GUEST_MEMFD | Userfault.MEM_USERFAULT);
      UserfaultBitmap b = uf.bitmap(vm, 0);
      b.set(5);
      CountDownLatch demanded = new CountDownLatch(1);
      uf.supervise(vm, new Userfault.Supervisor() {
        @Override
        public void demanded(long gpa, FaultSource source) {
          assertEquals(FaultSource.ASYNC, source);
          demanded.countDown();
        }

        @Override
        public String failure() {
          return null;
        }

        @Override
        public void stalled(long gpa) {}
      });
      CompletableFuture<Long> reader = CompletableFuture.supplyAsync(() -> vm.guestMemory().loadLong(5 * PAGE + 8));
      assertTrue(demanded.await(10, TimeUnit.SECONDS), "the wait asked the supervisor for the page");
      assertFalse(reader.isDone(), "the access waits for the page");
      uf.install(vm, 5 * PAGE, ByteBuffer.wrap(content(5)));
      assertEquals(5 * 1000 + 8 + 1, reader.get(10, TimeUnit.SECONDS));
      assertEquals(1, uf.stats().resolved(FaultSource.ASYNC));

      // a host mapping's accessors wait the same way
      GuestMemFile f = vm.memslots().get(0).file();
      b.set(6);
      try (HostMapping m = f.map()) {
        CompletableFuture<Long> hostRead = CompletableFuture.supplyAsync(() -> m.getLong(6 * PAGE));
        uf.install(vm, 6 * PAGE, ByteBuffer.wrap(content(6)));
        assertEquals(6 * 1000 + 1, hostRead.get(10, TimeUnit.SECONDS));
      }
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aMissingPageThatNeverArrivesFailsWithEioAtTheDeadlineNotZero(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Userfault uf = rt.feature(Userfault.class).orElseThrow();
      uf.deadline(Duration.ofMillis(200));
      Vm vm = vmWithSlot(rt, Memslot.GUEST_MEMFD | Userfault.MEM_USERFAULT);
      uf.bitmap(vm, 0).set(3);
      GmemException e = expect(Errno.EIO, () -> vm.guestMemory().loadLong(3 * PAGE));
      assertTrue(e.getMessage().contains("not resolved within"), e.getMessage());
      assertEquals(1, uf.stats().failedFaults());
      assertTrue(uf.isMissing(vm, 3 * PAGE), "nothing was served in its place");
    }
  }

  @Test
  void aKilledPageSourcePausesTheVmAndFailsEveryFaultWithinTheDeadline() throws Exception {
    try (GmemRuntime rt = Backends.open("kvm")) {
      Userfault uf = rt.feature(Userfault.class).orElseThrow();
      uf.deadline(Duration.ofMillis(300));
      Vm vm = vmWithSlot(rt, Memslot.GUEST_MEMFD);
      MemorySource source = new MemorySource();
      source.killed = true; // dead before it served anything
      source.background(false);
      try (PageServer server = PageServer.start(uf, vm, source); Vcpu cpu = vm.createVcpu(0)) {
        RealGuest.startRealMode(cpu, RealGuest.CODE);
        GmemException e = expect(Errno.EIO, () -> server.run(cpu));
        assertTrue(e.getMessage().contains("not resolved within"), e.getMessage());
        assertTrue(server.paused());
        GmemException again = expect(Errno.EIO, () -> server.run(cpu));
        assertTrue(again.getMessage().contains("VM paused"), again.getMessage());
        expect(Errno.EIO, () -> vm.guestMemory().loadLong(RealGuest.DATA)); // at once: the source is known dead
        assertEquals(0, server.residentPages());
      }
    }
  }

  @Test
  void aSourceThatReportsItsDeathFailsWaitingAccessesAtOnce() {
    try (GmemRuntime rt = Backends.open("memfd")) {
      Userfault uf = rt.feature(Userfault.class).orElseThrow();
      uf.deadline(Duration.ofSeconds(30));
      Vm vm = vmWithSlot(rt, Memslot.GUEST_MEMFD);
      PageSource dying = new PageSource() {
        @Override
        public void start(PageSink sink) {}

        @Override
        public void request(long gfn, boolean urgent) {
          new Thread(() -> {
            // a corrupted page: the CRC does not match, so it is never installed
            ByteBuffer page = ByteBuffer.wrap(content(gfn));
            ((PageServer) sinkOf(this)).page(gfn, page, 12345);
          }).start();
        }

        @Override
        public void close() {}
      };
      try (PageServer server = PageServer.start(uf, vm, dying)) {
        SINKS.put(dying, server);
        long t0 = System.nanoTime();
        GmemException e = expect(Errno.EIO, () -> vm.guestMemory().loadLong(2 * PAGE));
        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(20), "failed at once, not at the 30 s deadline");
        assertTrue(e.getMessage().contains("CRC32C mismatch"), e.getMessage());
        assertTrue(uf.isMissing(vm, 2 * PAGE), "the corrupt page was not installed");
      }
    }
  }

  static final java.util.Map<PageSource, PageSink> SINKS = new java.util.concurrent.ConcurrentHashMap<>();

  static PageSink sinkOf(PageSource s) {
    for (int i = 0; i < 1000 && !SINKS.containsKey(s); i++) {
      try {
        Thread.sleep(5);
      } catch (InterruptedException e) {
        throw new IllegalStateException(e);
      }
    }
    return SINKS.get(s);
  }

  @Test
  void aRealGuestRunsOnALazilyServedMemoryAndEndsWithIdenticalBytes() throws Exception {
    try (GmemRuntime rt = Backends.open("kvm")) {
      Userfault uf = rt.feature(Userfault.class).orElseThrow();
      Vm vm = vmWithSlot(rt, Memslot.GUEST_MEMFD);
      byte[] code = content(1);
      System.arraycopy(RealGuest.INCREMENT, 0, code, 0, RealGuest.INCREMENT.length);
      MemorySource source = new MemorySource() {
        @Override
        protected boolean read(long gfn, ByteBuffer into) {
          into.put(gfn == 1 ? code : content(gfn));
          return true;
        }
      };
      source.background(false); // demand faults only
      try (PageServer server = PageServer.start(uf, vm, source); Vcpu cpu = vm.createVcpu(0)) {
        RealGuest.startRealMode(cpu, RealGuest.CODE);
        VcpuExit.Io out = assertInstanceOf(VcpuExit.Io.class, server.run(cpu));
        byte first = content(2)[0];
        assertEquals((byte) (first + 1), out.data()[0], "the guest read served content, not zero");
        assertInstanceOf(VcpuExit.Hlt.class, server.run(cpu));
        assertEquals(List.of(1L, 2L), server.demandOrder(), "code, then data: the working set in demand order");
        assertEquals(2, server.residentPages());
        byte[] page = new byte[(int) PAGE];
        vm.guestMemory().read(2 * PAGE, page, 0, page.length);
        byte[] expected = content(2);
        expected[1] = (byte) (first + 1);
        assertArrayEquals(expected, page);
      }
    }
  }
}
