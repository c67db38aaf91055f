package dev.gmem.core.access;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
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
    CountDownLatch inside = new CountDownLatch(1);
    CountDownLatch leave = new CountDownLatch(1);
    Thread reader = new Thread(() -> {
      int slot = rcu.enter();
      assertTrue(slot >= 0);
      try {
        inside.countDown();
        leave.await(); // a test only: real sections never block
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      } finally {
        Rcu.exit(slot);
      }
    });
    reader.start();
    assertTrue(inside.await(10, TimeUnit.SECONDS));
    AtomicBoolean done = new AtomicBoolean();
    Thread writer = new Thread(() -> {
      rcu.synchronize();
      done.set(true);
    });
    writer.start();
    writer.join(300);
    assertFalse(done.get(), "the grace period ended while a reader was inside");
    leave.countDown();
    writer.join(10_000);
    assertTrue(done.get(), "the grace period did not end after the reader left");
    reader.join();
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
    CountDownLatch holderInside = new CountDownLatch(1);
    CountDownLatch holderGo = new CountDownLatch(1);
    AtomicLong holderSlot = new AtomicLong(-2);
    Thread holder = new Thread(() -> {
      int slot = rcu.enter();
      Rcu.exit(slot);
      holderSlot.set(slot);
      holderInside.countDown();
      try {
        holderGo.await();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    });
    holder.start();
    assertTrue(holderInside.await(10, TimeUnit.SECONDS));
    assertTrue(holderSlot.get() >= 0);

    CountDownLatch inside = new CountDownLatch(1);
    CountDownLatch leave = new CountDownLatch(1);
    AtomicLong otherSlot = new AtomicLong(-2);
    Thread other = sharingHomeWith(holder, () -> {
      int slot = rcu.enter();
      otherSlot.set(slot);
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
    other.start();
    assertTrue(inside.await(10, TimeUnit.SECONDS));
    assertTrue(otherSlot.get() >= 0, "no slot for a thread whose home cell is held");
    assertTrue(otherSlot.get() != holderSlot.get(), "two live threads share a slot");
    AtomicBoolean done = new AtomicBoolean();
    Thread writer = new Thread(() -> {
      rcu.synchronize();
      done.set(true);
    });
    writer.start();
    writer.join(300);
    assertFalse(done.get(), "the grace period ended while the overflow cell's reader was inside");
    leave.countDown();
    writer.join(10_000);
    assertTrue(done.get());
    other.join();

    holderGo.countDown();
    holder.join();
    AtomicLong heirSlot = new AtomicLong(-2);
    Thread heir = sharingHomeWith(holder, () -> {
      int slot = rcu.enter();
      Rcu.exit(slot);
      heirSlot.set(slot);
    });
    heir.start();
    heir.join();
    assertEquals(holderSlot.get(), heirSlot.get(), "a dead thread's home cell was not taken over");
  }

  /**
   * {@code Thread.getId()} can be overridden: a thread that claims a live reader's id still gets a
   * slot of its own (cells are owned by thread identity), and the grace period waits for it.
   */
  @ParameterizedTest
  @MethodSource("flavours")
  void aThreadClaimingAnotherThreadsIdGetsItsOwnSlot(Rcu rcu) throws Exception {
    CountDownLatch holderEntered = new CountDownLatch(1);
    CountDownLatch holderGo = new CountDownLatch(1);
    AtomicLong holderSlot = new AtomicLong(-2);
    Thread holder = new Thread(() -> {
      int slot = rcu.enter();
      Rcu.exit(slot);
      holderSlot.set(slot);
      holderEntered.countDown();
      try {
        holderGo.await();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    });
    holder.start();
    assertTrue(holderEntered.await(10, TimeUnit.SECONDS));
    CountDownLatch inside = new CountDownLatch(1);
    CountDownLatch leave = new CountDownLatch(1);
    AtomicLong impostorSlot = new AtomicLong(-2);
    Thread impostor = new Thread(() -> {
      int slot = rcu.enter();
      impostorSlot.set(slot);
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
    }) {
      @Override
      @SuppressWarnings("deprecation")
      public long getId() {
        return holder.getId();
      }
    };
    impostor.start();
    assertTrue(inside.await(10, TimeUnit.SECONDS));
    assertTrue(impostorSlot.get() >= 0);
    assertTrue(impostorSlot.get() != holderSlot.get(), "a thread claiming another's id shares its slot");
    AtomicBoolean done = new AtomicBoolean();
    Thread writer = new Thread(() -> {
      rcu.synchronize();
      done.set(true);
    });
    writer.start();
    writer.join(300);
    assertFalse(done.get(), "the grace period ended while the impostor was inside");
    leave.countDown();
    writer.join(10_000);
    assertTrue(done.get());
    impostor.join();
    holderGo.countDown();
    holder.join();
  }
}
