package dev.gmem.userfault;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.core.host.HostMemoryImpl;
import dev.gmem.core.sys.Sys;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import org.junit.jupiter.api.Test;

/**
 * The bitmap's word operations against a {@link BitSet}, and its close against threads still
 * using it: a use either completes on the live words or fails with EBADF, never reads or writes
 * unmapped memory.
 */
class UserfaultBitmapTest {
  static final int PAGES = 200; // not a multiple of 64: the last word is partial

  /** Loading the native binding takes tens of milliseconds: once per class. */
  static final HostMemoryImpl HOST = new HostMemoryImpl(Sys.load(), null);

  static UserfaultBitmap bitmap(long pages) {
    return new UserfaultBitmap(HOST, pages);
  }

  /** op 0 set, 1 clear, 2 setRange, 3 clearRange; a and b are pages. */
  record Op(int op, int a, int b) {}

  @Provide
  Arbitrary<List<Op>> ops() {
    Arbitrary<Integer> page = Arbitraries.integers().between(0, PAGES);
    return Combinators.combine(Arbitraries.integers().between(0, 3), page, page).as(Op::new).list().ofMaxSize(40);
  }

  @Property(tries = 200)
  void wordOperationsAgreeWithABitSet(@ForAll("ops") List<Op> ops) {
    try (UserfaultBitmap b = bitmap(PAGES)) {
      BitSet model = new BitSet(PAGES);
      for (Op o : ops) {
        int lo = Math.min(o.a(), o.b());
        int hi = Math.max(o.a(), o.b());
        switch (o.op()) {
          case 0 -> {
            if (lo < PAGES) {
              b.set(lo);
              model.set(lo);
            }
          }
          case 1 -> {
            if (lo < PAGES) {
              b.clear(lo);
              model.clear(lo);
            }
          }
          case 2 -> {
            b.setRange(lo, hi);
            model.set(lo, hi);
          }
          default -> {
            b.clearRange(lo, hi);
            model.clear(lo, hi);
          }
        }
      }
      assertEquals(model.cardinality(), b.countSet());
      for (int p = 0; p < PAGES; p++) {
        assertEquals(model.get(p), b.isSet(p), "page " + p);
        int max = PAGES - p;
        int expectSet = model.get(p) ? model.nextClearBit(p) - p : 0;
        int expectClear = model.get(p) ? 0 : Math.min(max, (model.nextSetBit(p) < 0 ? PAGES : model.nextSetBit(p)) - p);
        assertEquals(Math.min(max, expectSet), b.runLength(p, max, true), "set run at " + p);
        assertEquals(expectClear, b.runLength(p, max, false), "clear run at " + p);
      }
    }
  }

  @Test
  void aClearRangeReachingPastTheBitmapClearsNothing() {
    try (UserfaultBitmap b = bitmap(PAGES)) {
      b.setAll();
      org.junit.jupiter.api.Assertions.assertThrows(IndexOutOfBoundsException.class, () -> b.clearRange(10, PAGES + 1));
      org.junit.jupiter.api.Assertions.assertThrows(IndexOutOfBoundsException.class, () -> b.runLength(PAGES - 2, 3, true));
      assertEquals(PAGES, b.countSet());
    }
  }

  /**
   * Before: a use checked {@code open} and then touched the words, and close() unmapped them in
   * between — a read of unmapped memory (SIGSEGV, or whatever HotSpot's unsafe access hands back).
   * Every bit here stays set, so a read that says "clear" came from memory that is not the bitmap.
   */
  @Test
  void closingUnderThreadsStillUsingTheBitmapFailsThemWithEbadfAndNeverReadsUnmappedMemory() throws Exception {
    AtomicLong wrong = new AtomicLong();
    AtomicReference<Throwable> unexpected = new AtomicReference<>();
    long uses = 0;
    for (int round = 0; round < 100; round++) {
      UserfaultBitmap b = bitmap(4096);
      b.setAll();
      int n = 3;
      CountDownLatch running = new CountDownLatch(n);
      AtomicLong done = new AtomicLong();
      List<Thread> users = new ArrayList<>();
      for (int t = 0; t < n; t++) {
        int kind = t;
        Thread th = new Thread(() -> {
          long i = 0;
          try {
            while (true) {
              long p = (i * 61) & 4095;
              switch (kind) {
                case 0 -> {
                  if (!b.isSet(p)) {
                    wrong.incrementAndGet();
                  }
                }
                case 1 -> b.set(p); // idempotent: every bit stays set
                default -> {
                  if (b.runLength(p, (int) Math.min(64, 4096 - p), true) != Math.min(64, 4096 - p)) {
                    wrong.incrementAndGet();
                  }
                }
              }
              if (++i == 100) {
                running.countDown();
              }
            }
          } catch (GmemException e) {
            if (e.errno() != Errno.EBADF) {
              unexpected.compareAndSet(null, e);
            }
          } catch (Throwable e) {
            unexpected.compareAndSet(null, e);
          } finally {
            done.addAndGet(i);
          }
        });
        users.add(th);
        th.start();
      }
      running.await();
      b.close();
      for (Thread th : users) {
        th.join(10_000);
        assertTrue(!th.isAlive(), "a user of a closed bitmap must end with EBADF");
      }
      uses += done.get();
    }
    assertEquals(null, unexpected.get(), "only EBADF may reach a user of a closed bitmap");
    assertEquals(0, wrong.get(), "a read saw a clear bit in a bitmap whose bits were all set (" + uses + " uses)");
  }

  /**
   * More waiters than the bitmap has wait slots (the rest wait on its condition): each returns true
   * once its own page is cleared and not before, whatever else is cleared meanwhile; a waiter on a
   * page that stays set runs out its deadline and returns false; close ends the rest with false.
   */
  @Test
  void everyWaiterReturnsWhenItsOwnPageClearsAndOnlyThen() throws Exception {
    int n = 80;
    try (UserfaultBitmap b = bitmap(256)) {
      b.setAll();
      long far = System.nanoTime() + 60_000_000_000L;
      List<Thread> threads = new ArrayList<>();
      AtomicReference<Boolean>[] results = new AtomicReference[n + 1];
      for (int i = 0; i <= n; i++) {
        int page = i;
        results[i] = new AtomicReference<>();
        Thread t = new Thread(() -> {
          try {
            results[page].set(b.awaitClear(page, page == n ? System.nanoTime() + 200_000_000L : far, () -> false));
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
        });
        threads.add(t);
        t.start();
      }
      threads.get(n).join(30_000);
      assertEquals(Boolean.FALSE, results[n].get(), "a waiter whose page stays set runs out its deadline");
      for (int i = n - 1; i >= 0; i--) {
        b.clear(i);
        if (i % 2 == 0) {
          b.clearRange(200, 256); // pages nobody waits for: wakes nobody's page
        }
        threads.get(i).join(30_000);
        assertEquals(Boolean.TRUE, results[i].get(), "the waiter of page " + i);
        if (i > 0) {
          assertEquals(null, results[i - 1].get(), "the waiter of page " + (i - 1) + " returned before its page cleared");
        }
      }
    }
  }
}
