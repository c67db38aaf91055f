package dev.gmem.core.access;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.mockito.Mockito.mock;
import static org.mockito.Mockito.times;
import static org.mockito.Mockito.verify;

import dev.gmem.core.sys.Sys;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** The grace period waits for every section that began before it, with membarrier and with reader fences. */
class RcuTest {

  static Stream<Rcu> flavours() {
    return Stream.of(Rcu.GLOBAL, new Rcu(null));
  }

  @ParameterizedTest
  @MethodSource("flavours")
  void synchronizeWaitsForASectionInProgress(Rcu rcu) throws Exception {
    Inside.run(rcu, Thread::new); // a test only: real sections never block
  }

  /**
   * Dekker with the writer's side in synchronize: a reader that found the flag up finishes its
   * section before synchronize returns, so the writer never sees a section that began before its
   * change still running afterwards.
   */
  @ParameterizedTest
  @MethodSource("flavours")
  void noSectionThatSawTheOldStateOutlivesTheGracePeriod(Rcu rcu) throws Exception {
    final class Shared {
      volatile boolean up;
      volatile long inFlightOld;
    }
    AtomicLong violations = new AtomicLong();
    AtomicLong sections = new AtomicLong();
    AtomicBoolean stop = new AtomicBoolean();
    Shared s = new Shared();
    Thread[] readers = new Thread[2];
    for (int i = 0; i < readers.length; i++) {
      readers[i] = new Thread(() -> {
        while (!stop.get()) {
          int slot = rcu.enter();
          assertTrue(slot >= 0);
          try {
            if (s.up) {
              s.inFlightOld = 1;
              Thread.onSpinWait();
              s.inFlightOld = 0;
            }
          } finally {
            Rcu.exit(slot);
          }
          sections.incrementAndGet();
        }
      });
      readers[i].start();
    }
    while (sections.get() < 1000) {
      Thread.onSpinWait();
    }
    for (int round = 0; round < 2000; round++) {
      s.up = true;
      Thread.onSpinWait();
      s.up = false; // the change
      rcu.synchronize();
      if (s.inFlightOld != 0) {
        violations.incrementAndGet();
      }
    }
    stop.set(true);
    for (Thread t : readers) {
      t.join();
    }
    assertTrue(sections.get() > 0);
    assertEquals(0, violations.get(), "a section that saw the old state ran after synchronize returned");
  }

  /** A thread whose id shares its home cell with a live thread's (ids 1024 apart). */
  private static Thread sharingHomeWith(Thread holder, Runnable body) {
    Thread t;
    do {
      t = new Thread(body); // ids are handed out at construction, one by one
    } while (((t.getId() - holder.getId()) & 1023) != 0);
    return t;
  }

  /**
   * A thread whose home cell a live thread holds gets a cell of its own, and a grace period waits
   * for its section; once the holder is dead, the next thread with that home takes the cell over.
   */
  @ParameterizedTest
  @MethodSource("flavours")
  void threadsSharingAHomeCellGetTheirOwnSlots(Rcu rcu) throws Exception {
    Holder holder = Holder.start(rcu);
    long other = Inside.run(rcu, body -> sharingHomeWith(holder.thread, body));
    assertTrue(other != holder.slot.get(), "two live threads share a slot");
    holder.end();
    AtomicLong heirSlot = new AtomicLong(-2);
    Thread heir = sharingHomeWith(holder.thread, () -> {
      int slot = rcu.enter();
      Rcu.exit(slot);
      heirSlot.set(slot);
    });
    heir.start();
    heir.join();
    assertEquals(holder.slot.get(), heirSlot.get(), "a dead thread's home cell was not taken over");
  }

  /**
   * {@code Thread.getId()} can be overridden: a thread that claims a live reader's id still gets a
   * slot of its own (cells are owned by thread identity), and the grace period waits for it.
   */
  @ParameterizedTest
  @MethodSource("flavours")
  void aThreadClaimingAnotherThreadsIdGetsItsOwnSlot(Rcu rcu) throws Exception {
    Holder holder = Holder.start(rcu);
    long impostor = Inside.run(rcu, body -> new Thread(body) {
      @Override
      @SuppressWarnings("deprecation")
      public long getId() {
        return holder.thread.getId();
      }
    });
    assertTrue(impostor != holder.slot.get(), "a thread claiming another's id shares its slot");
    holder.end();
  }

  /** A live thread that took its home cell (one section, entered and left) and waits to be ended. */
  private static final class Holder {
    final AtomicLong slot = new AtomicLong(-2);
    final CountDownLatch go = new CountDownLatch(1);
    Thread thread;

    static Holder start(Rcu rcu) throws InterruptedException {
      Holder h = new Holder();
      CountDownLatch entered = new CountDownLatch(1);
      h.thread = new Thread(() -> {
        int slot = rcu.enter();
        Rcu.exit(slot);
        h.slot.set(slot);
        entered.countDown();
        try {
          h.go.await();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      });
      h.thread.start();
      assertTrue(entered.await(10, TimeUnit.SECONDS));
      assertTrue(h.slot.get() >= 0);
      return h;
    }

    void end() throws InterruptedException {
      go.countDown();
      thread.join();
    }
  }

  /** A reader made by {@code make} inside a section while a grace period runs. */
  private static final class Inside {
    /**
     * Runs a reader on the thread {@code make} builds around its body, checks that a grace period
     * begun while it is inside waits for it and ends once it left; the reader's slot.
     */
    static long run(Rcu rcu, java.util.function.Function<Runnable, Thread> make) throws InterruptedException {
      CountDownLatch inside = new CountDownLatch(1);
      CountDownLatch leave = new CountDownLatch(1);
      AtomicLong slotSeen = new AtomicLong(-2);
      Thread reader = make.apply(() -> {
        int slot = rcu.enter();
        slotSeen.set(slot);
        try {
          inside.countDown();
          leave.await();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        } finally {
          if (slot >= 0) {
            Rcu.exit(slot);
          }
        }
      });
      reader.start();
      assertTrue(inside.await(10, TimeUnit.SECONDS));
      assertTrue(slotSeen.get() >= 0, "no slot for the reader");
      AtomicBoolean done = new AtomicBoolean();
      Thread writer = new Thread(() -> {
        rcu.synchronize();
        done.set(true);
      });
      writer.start();
      writer.join(300);
      assertFalse(done.get(), "the grace period ended while the reader was inside");
      leave.countDown();
      writer.join(10_000);
      assertTrue(done.get());
      reader.join();
      return slotSeen.get();
    }
  }
  /**
   * A grace period pays for membarrier only when another live thread has a read-side cell: the
   * caller's own cell and a dead thread's hold no section. Mockito counts the membarrier calls.
   */
  @Test
  void membarrierOnlyWhileAnotherLiveThreadHasACell() throws Exception {
    Sys sys = mock(Sys.class);
    Rcu rcu = new Rcu(sys);
    int mine = rcu.enter();
    Rcu.exit(mine);
    CountDownLatch entered = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    int[] theirs = new int[1];
    Thread other = new Thread(() -> {
      theirs[0] = rcu.enter();
      Rcu.exit(theirs[0]);
      entered.countDown();
      try {
        release.await();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    });
    other.start();
    assertTrue(entered.await(10, TimeUnit.SECONDS));
    assertTrue(Rcu.noOtherReader(new int[] {mine}), "only the caller's own cell");
    assertFalse(Rcu.noOtherReader(new int[] {mine, theirs[0]}), "a live thread's cell, outside a section now");
    rcu.synchronize(); // the registry holds the other thread's cell
    verify(sys, times(1)).membarrier(Sys.MEMBARRIER_CMD_PRIVATE_EXPEDITED);
    release.countDown();
    other.join(10_000);
    assertTrue(Rcu.noOtherReader(new int[] {mine, theirs[0]}), "a dead thread's cell");
  }
}
