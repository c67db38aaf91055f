package dev.gmem.userfault;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

class PercpuRefTest {

  @Test
  void referencesWhileLiveNoneAfterKill() {
    PercpuRef ref = new PercpuRef();
    int a = ref.tryGetLive();
    int b = ref.tryGetLive(); // the same thread twice: the same stripe, counted twice
    assertTrue(a >= 0 && b >= 0);
    ref.put(a);
    ref.put(b);
    assertTrue(ref.kill());
    assertTrue(ref.isDead());
    assertEquals(-1, ref.tryGetLive());
    assertFalse(ref.kill(), "a second kill kills nothing");
  }

  @Test
  void killWaitsForTheReferenceHeldAndFailsLaterTakers() throws InterruptedException {
    PercpuRef ref = new PercpuRef();
    int held = ref.tryGetLive();
    AtomicBoolean killed = new AtomicBoolean();
    Thread killer = new Thread(() -> killed.set(ref.kill()));
    killer.start();
    while (!ref.isDead()) {
      Thread.onSpinWait(); // the killer marked it dead and now waits for our reference
    }
    assertEquals(-1, ref.tryGetLive(), "no reference once the kill began");
    assertTrue(killer.isAlive(), "kill returned while a reference was held");
    assertFalse(killed.get());
    ref.put(held);
    killer.join();
    assertTrue(killed.get());
  }

  @Test
  void manyThreadsTakingAndDroppingLeaveNothingForKillToWaitOn() throws InterruptedException {
    PercpuRef ref = new PercpuRef();
    Thread[] threads = new Thread[8];
    for (int t = 0; t < threads.length; t++) {
      threads[t] = new Thread(() -> {
        for (int i = 0; i < 10_000; i++) {
          ref.put(ref.tryGetLive());
        }
      });
      threads[t].start();
    }
    for (Thread t : threads) {
      t.join();
    }
    assertTrue(ref.kill()); // returns: every stripe back at zero
  }
}
