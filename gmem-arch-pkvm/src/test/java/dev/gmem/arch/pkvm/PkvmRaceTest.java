package dev.gmem.arch.pkvm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.MemoryExitException;
import dev.gmem.api.Pin;
import dev.gmem.api.Shareability;
import dev.gmem.core.conformance.Backends;
import dev.gmem.core.conformance.PipeReference;
import dev.gmem.core.convert.TestInode;
import dev.gmem.core.sys.Sys;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Guest share/unshare threads (each on its own pages, as a guest kernel serializes
 * set_memory_decrypted per page) race a host accessor, OS-level raw-pointer readers (a kernel
 * copy from the mapping's address, vmsplice references held across unshares), a pin holder that
 * makes unshares park in NONE, and a VMM trying to convert on its own. Bounded by operation
 * counts: no host read ever sees a private tag the guest wrote into a page it owns, no host
 * write to a shared page is lost without an unshare in between, nothing deadlocks, and at the end
 * the hypervisor's ownership and gmem's shareability agree on every page.
 */
class PkvmRaceTest {
  static final long PAGE = PkvmGuest.PAGE;
  static final int PAGES = 16;
  static final int ROUNDS = 1200;
  static final long PRIVATE_TAG = 0x7e57_0000_0000_0000L;
  static final long SHARED_TAG = 0x5a5a_0000_0000_0000L;
  static final long TAG_MASK = 0xffff_0000_0000_0000L;
  static final Sys SYS = TestInode.SYS;

  static Stream<String> backends() {
    return Backends.names();
  }

  @ParameterizedTest
  @MethodSource("backends")
  void guestConversionsRaceHostAccessRawPointersAndPins(String backend) throws Exception {
    try (GmemRuntime rt = Backends.open(backend); PkvmGuest g = new PkvmGuest(rt, PAGES)) {
      // Bumped before and after each unshare of a page: even and unchanged = no unshare in between.
      AtomicLongArray epochs = new AtomicLongArray(PAGES);
      AtomicLong leaks = new AtomicLong();
      AtomicLong lost = new AtomicLong();
      AtomicLong shares = new AtomicLong();
      AtomicLong unshares = new AtomicLong();
      AtomicLong parked = new AtomicLong();
      AtomicLong hostWrites = new AtomicLong();
      AtomicLong rawReads = new AtomicLong();
      AtomicLong vmsplices = new AtomicLong();
      AtomicLong pins = new AtomicLong();
      AtomicLong rogueRefusals = new AtomicLong();

      ExecutorService pool = Executors.newFixedThreadPool(7);
      List<Future<?>> jobs = new ArrayList<>();
      // The pinner pins for as long as the guest lanes run, so that unshares meet pins (and park)
      // however the threads' speeds compare on the host.
      AtomicInteger lanesRunning = new AtomicInteger(2);
      for (int t = 0; t < 2; t++) {
        int lane = t;
        jobs.add(pool.submit(() -> {
          try {
            guestLane(g, lane, epochs, shares, unshares, parked);
          } finally {
            lanesRunning.decrementAndGet();
          }
          return null;
        }));
      }
      jobs.add(pool.submit(() -> {
        SplittableRandom r = new SplittableRandom(7);
        for (int i = 0; i < 4 * ROUNDS; i++) {
          int p = r.nextInt(PAGES);
          long e1 = epochs.get(p);
          long v = SHARED_TAG | i;
          try {
            g.map.putLong(p * PAGE, v);
            hostWrites.incrementAndGet();
            long back = g.map.getLong(p * PAGE);
            if ((g.map.getLong(p * PAGE + 8) & TAG_MASK) == PRIVATE_TAG) {
              leaks.incrementAndGet();
            }
            if ((e1 & 1) == 0 && e1 == epochs.get(p) && back != v) {
              lost.incrementAndGet();
            }
          } catch (GmemException e) {
            assertEquals(Errno.EACCES, e.errno(), e.getMessage());
          }
        }
        return null;
      }));
      jobs.add(pool.submit(() -> {
        SplittableRandom r = new SplittableRandom(17);
        int[] pipe = SYS.pipe();
        jnr.ffi.Pointer buf = SYS.allocate(8);
        ArrayDeque<PipeReference> held = new ArrayDeque<>();
        try {
          for (int i = 0; i < 4 * ROUNDS; i++) {
            int p = r.nextInt(PAGES);
            long addr = g.map.address() + p * PAGE;
            try {
              SYS.write(pipe[1], addr + 8, 8); // the kernel copies from the raw address
              SYS.read(pipe[0], buf.address(), 8);
              rawReads.incrementAndGet();
              if ((buf.getLong(0) & TAG_MASK) == PRIVATE_TAG) {
                leaks.incrementAndGet();
              }
            } catch (GmemException e) {
              assertEquals(Errno.EFAULT, e.errno(), e.getMessage());
            }
            if (i % 4 == 0) {
              try {
                held.add(PipeReference.take(addr, PAGE)); // a kernel reference kept across unshares
                vmsplices.incrementAndGet();
              } catch (GmemException e) {
                assertEquals(Errno.EFAULT, e.errno(), e.getMessage());
              }
              if (held.size() > 8) {
                try (PipeReference oldest = held.poll()) {
                  if ((oldest.readLong(8) & TAG_MASK) == PRIVATE_TAG) {
                    leaks.incrementAndGet();
                  }
                }
              }
            }
          }
        } finally {
          held.forEach(PipeReference::close);
          SYS.closeQuietly(pipe[0]);
          SYS.closeQuietly(pipe[1]);
        }
        return null;
      }));
      jobs.add(pool.submit(() -> {
        SplittableRandom r = new SplittableRandom(29);
        ArrayDeque<Pin> held = new ArrayDeque<>();
        try {
          for (int i = 0; i < 2 * ROUNDS || lanesRunning.get() > 0; i++) {
            try {
              held.add(g.file.pin(r.nextInt(PAGES) * PAGE, PAGE));
              pins.incrementAndGet();
            } catch (GmemException e) {
              assertEquals(Errno.EFAULT, e.errno(), e.getMessage()); // not host-faultable now
            }
            if (held.size() > 4) {
              held.poll().close();
            }
          }
        } finally {
          held.forEach(Pin::close);
        }
        return null;
      }));
      jobs.add(pool.submit(() -> {
        // The VMM on its own: only conversions a pending guest request covers may pass.
        SplittableRandom r = new SplittableRandom(31);
        for (int i = 0; i < ROUNDS / 2; i++) {
          int p = r.nextInt(PAGES);
          try {
            g.file.setShareability(p * PAGE, PAGE, r.nextBoolean() ? Shareability.SHARED : Shareability.PRIVATE);
          } catch (GmemException e) {
            assertEquals(Errno.EPERM, e.errno(), e.getMessage());
            rogueRefusals.incrementAndGet();
          }
        }
        return null;
      }));
      pool.shutdown();
      assertTrue(pool.awaitTermination(60, TimeUnit.SECONDS), "deadlock: racing threads did not finish");
      for (Future<?> j : jobs) {
        j.get();
      }
      assertEquals(0, leaks.get(), "host reads of guest-owned bytes");
      assertEquals(0, lost.get(), "shared writes lost without an unshare in between");
      assertTrue(shares.get() > 0 && unshares.get() > 0 && parked.get() > 0 && hostWrites.get() > 0 && rawReads.get() > 0
              && vmsplices.get() > 0 && pins.get() > 0 && rogueRefusals.get() > 0,
          "the race exercised every path: " + shares + " shares, " + unshares + " unshares (" + parked + " parked), " + hostWrites
              + " host writes, " + rawReads + " raw reads, " + vmsplices + " vmsplices, " + pins + " pins, " + rogueRefusals + " refused VMM conversions");
      for (int p = 0; p < PAGES; p++) {
        Shareability s = g.file.shareability(p * PAGE);
        Optional<Ownership> o = g.hyp.ownership(g.page(p));
        assertTrue(s == Shareability.SHARED ? o.isPresent() && o.get().sharedWithHost() : s == Shareability.PRIVATE && o.map(Ownership::guestOwned).orElse(true),
            "page " + p + ": gmem says " + s + ", the hypervisor " + o);
      }
    }
  }

  /** One guest lane: private writes, shares and unshares of its own pages, counting what happened. */
  private static void guestLane(PkvmGuest g, int lane, AtomicLongArray epochs, AtomicLong shares, AtomicLong unshares,
      AtomicLong parked) {
    SplittableRandom r = new SplittableRandom(lane);
    boolean[] shared = new boolean[PAGES];
    for (int i = 0; i < ROUNDS; i++) {
      int p = 2 * r.nextInt(PAGES / 2) + lane;
      try {
        if (!shared[p]) {
          g.cpu.writeLong(g.gpa(p) + 8, PRIVATE_TAG | i, true);
          if (r.nextBoolean()) {
            g.cpu.writeLong(g.gpa(p) + 8, 0, true); // the guest scrubs what it is about to share
            long ret = g.call(PkvmHypercalls.MEM_SHARE, p);
            assertEquals(PkvmHypercalls.SUCCESS, ret, "share of page " + p);
            shared[p] = true;
            shares.incrementAndGet();
          }
        } else if (r.nextBoolean()) {
          epochs.incrementAndGet(p);
          try {
            long ret = g.call(PkvmHypercalls.MEM_UNSHARE, p);
            assertEquals(PkvmHypercalls.SUCCESS, ret, "unshare of page " + p);
            if (g.file.shareability(p * PAGE) == Shareability.NONE) {
              parked.incrementAndGet();
            }
          } finally {
            epochs.incrementAndGet(p);
          }
          shared[p] = false;
          unshares.incrementAndGet();
        }
      } catch (MemoryExitException parkedPage) {
        // NONE: nobody faults it until the pins drain; the guest retries later
      }
    }
  }
}
