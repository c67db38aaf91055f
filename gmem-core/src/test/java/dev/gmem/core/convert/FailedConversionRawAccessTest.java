package dev.gmem.core.convert;

import static dev.gmem.core.conformance.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Pin;
import dev.gmem.api.Shareability;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A conversion that fails changes nothing, not even for a moment: raw users of a host mapping
 * ({@link HostMapping#buffer}) on the pages of a to-private that fails with EAGAIN must never meet
 * a covered page. HotSpot turns such a SIGBUS into garbage values and a deferred InternalError, so
 * these tests count both.
 */
class FailedConversionRawAccessTest {
  static final long PAGE = 4096;
  static final int PAGES = 16;
  static final int FAILED_CONVERSIONS = 10_000;

  static java.util.stream.Stream<String> backends() {
    return Backends.names();
  }

  @ParameterizedTest
  @MethodSource("backends")
  void rawWritersOnTheRangeOfAFailingToPrivateNeverFaultAndKeepEveryWrite(String backend) throws Exception {
    try (GmemRuntime rt = Backends.open(backend);
        GuestMemFile f = rt.createVm(VmType.SW_PROTECTED).createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
        HostMapping m = f.map();
        Pin pin = f.pin((PAGES - 1) * PAGE, PAGE)) {
      ByteBuffer raw = m.buffer(0, (int) (PAGES * PAGE));
      int writers = 2;
      AtomicBoolean stop = new AtomicBoolean();
      AtomicLong wrong = new AtomicLong();
      AtomicLong writes = new AtomicLong();
      long[] last = new long[writers];
      ConcurrentLinkedQueue<Throwable> errors = new ConcurrentLinkedQueue<>();
      List<Thread> threads = new ArrayList<>();
      for (int t = 0; t < writers; t++) {
        int page = 4 * t; // pages 0, 4, 8: inside the range, away from the pinned page
        Thread th = new Thread(() -> {
          long v = 0;
          try {
            while (!stop.get()) {
              v++;
              raw.putLong(page * (int) PAGE, v);
              if (raw.getLong(page * (int) PAGE) != v) {
                wrong.incrementAndGet();
              }
              writes.incrementAndGet();
            }
          } catch (Throwable e) {
            errors.add(e);
          }
          last[page / 4] = v;
        });
        th.start();
        threads.add(th);
      }
      awaitProgress(writes, errors);
      for (int i = 0; i < FAILED_CONVERSIONS; i++) {
        expect(Errno.EAGAIN, () -> f.setShareability(0, PAGES * PAGE, Shareability.PRIVATE));
      }
      stop.set(true);
      for (Thread th : threads) {
        th.join();
      }
      assertEquals(List.of(), List.copyOf(errors), "raw writers died during failed conversions");
      assertEquals(0, wrong.get(), "raw reads returned something else than the value just written");
      for (int t = 0; t < writers; t++) {
        assertEquals(last[t], m.getLong(4 * t * PAGE), "every write is kept (page " + 4 * t + ")");
      }
      assertTrue(writes.get() > writers, "the writers ran: " + writes.get());
      assertEquals(Shareability.SHARED, f.shareability(0));
    }
  }

  /** Waits until the racing threads are running (or died), so that the conversions really race them. */
  static void awaitProgress(AtomicLong counter, ConcurrentLinkedQueue<Throwable> errors) {
    while (counter.get() < 1000 && errors.isEmpty()) {
      Thread.onSpinWait();
    }
  }

  /** The hostile run of item 10: reads through {@code m.buffer()} during failing conversions return the truth. */
  @ParameterizedTest
  @MethodSource("backends")
  void rawReadsDuringFailingConversionsAlwaysReturnTheTrueValue(String backend) throws Exception {
    try (GmemRuntime rt = Backends.open(backend);
        GuestMemFile f = rt.createVm(VmType.SW_PROTECTED).createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
        HostMapping m = f.map()) {
      m.putLong(0, 0x1111_2222_3333_4444L);
      m.putLong(3 * PAGE, 0x5555_6666_7777_8888L);
      try (Pin pin = f.pin(3 * PAGE, PAGE)) {
        AtomicBoolean stop = new AtomicBoolean();
        AtomicLong garbage = new AtomicLong();
        AtomicLong reads = new AtomicLong();
        ConcurrentLinkedQueue<Throwable> errors = new ConcurrentLinkedQueue<>();
        Thread reader = new Thread(() -> {
          try {
            ByteBuffer page0 = m.buffer(0, 8);
            ByteBuffer page3 = m.buffer(3 * PAGE, 8);
            while (!stop.get()) {
              if (page0.getLong(0) != 0x1111_2222_3333_4444L) {
                garbage.incrementAndGet();
              }
              if (page3.getLong(0) != 0x5555_6666_7777_8888L) {
                garbage.incrementAndGet();
              }
              reads.addAndGet(2);
            }
          } catch (Throwable e) {
            errors.add(e);
          }
        });
        reader.start();
        awaitProgress(reads, errors);
        for (int i = 0; i < FAILED_CONVERSIONS; i++) {
          expect(Errno.EAGAIN, () -> f.setShareability(0, PAGES * PAGE, Shareability.PRIVATE));
        }
        stop.set(true);
        reader.join();
        assertEquals(List.of(), List.copyOf(errors), "raw reads raised errors");
        assertEquals(0, garbage.get(), "raw reads returned garbage (of " + reads.get() + ")");
        assertTrue(reads.get() > 0);
      }
    }
  }

  static java.util.stream.Stream<org.junit.jupiter.params.provider.Arguments> backendsAndSteps() {
    return Backends.names().flatMap(b -> java.util.Arrays.stream(ConversionStep.values())
        .map(step -> org.junit.jupiter.params.provider.Arguments.of(b, step)));
  }

  /**
   * A conversion that fails at any of its fallible steps leaves every host mapping as it was: raw
   * views map what they mapped, gmem holds the VMAs it held, and the raw view still works.
   */
  @ParameterizedTest
  @MethodSource("backendsAndSteps")
  void aConversionFailingAtAnyStepLeavesEveryMappingAsItWas(String backend, ConversionStep step) {
    try (GmemRuntime rt = Backends.open(backend);
        GuestMemFile f = rt.createVm(VmType.SW_PROTECTED).createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
        HostMapping m = f.map();
        HostMapping n = f.map(0, 8 * PAGE, dev.gmem.api.Prot.READ_WRITE, dev.gmem.api.MapFlags.SHARED)) {
      for (long p = 0; p < PAGES; p++) {
        m.putLong(p * PAGE, p);
      }
      f.setShareability(2 * PAGE, 2 * PAGE, Shareability.PRIVATE); // an island: a to-shared has something to map
      ByteBuffer rawM = m.buffer(0, (int) (2 * PAGE));
      ByteBuffer rawN = n.buffer(4 * PAGE, (int) (4 * PAGE));
      long vmas = dev.gmem.core.sys.MapCountBudget.process().used();
      dev.gmem.core.inode.GuestMemInodeImpl inode = ((dev.gmem.core.file.GuestMemFileImpl) f).inodeImpl();
      inode.conversionFaultInjector((s, index) -> {
        if (s == step) {
          throw dev.gmem.api.GmemException.atOffset(Errno.ENOMEM, index << 12, "injected at " + s);
        }
      });
      try {
        for (Shareability target : new Shareability[] {Shareability.PRIVATE, Shareability.SHARED}) {
          try {
            f.setShareability(0, PAGES * PAGE, target);
          } catch (dev.gmem.api.GmemException e) {
            assertTrue(e.getMessage().contains("injected at " + step), e.getMessage());
          }
          if (f.shareability(0) == target && f.shareability(2 * PAGE) == target) {
            continue; // the step does not run in this direction
          }
          assertEquals(Shareability.PRIVATE, f.shareability(2 * PAGE), "nothing changed");
          assertEquals(Shareability.SHARED, f.shareability(0));
          assertEquals(vmas, dev.gmem.core.sys.MapCountBudget.process().used(), "no VMA made or lost");
          for (long p : new long[] {0, 1, 4, 5, 6, 7, 8, PAGES - 1}) {
            assertEquals(null, dev.gmem.core.conformance.KernelCopy.read(m.address() + p * PAGE, 8), "page " + p + " still mapped");
          }
          assertEquals(Errno.EFAULT, dev.gmem.core.conformance.KernelCopy.read(m.address() + 2 * PAGE, 8), "the island still covered");
          assertEquals(1, rawM.getLong((int) PAGE));
          assertEquals(5, rawN.getLong((int) PAGE));
        }
      } finally {
        inode.conversionFaultInjector(FaultInjector.NONE);
      }
      f.setShareability(0, PAGES * PAGE, Shareability.SHARED);
      assertEquals(2, m.buffer(2 * PAGE, 8).getLong(0), "and a conversion afterwards works");
    }
  }
}
