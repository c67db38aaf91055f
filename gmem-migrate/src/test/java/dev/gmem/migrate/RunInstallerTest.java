package dev.gmem.migrate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.gmem.migrate.wire.Wire;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.Test;

/** The stream's install stage: every checked run goes in, in order, off the reader's thread; failures reach the reader. */
class RunInstallerTest {
  record Installed(Thread thread, long first, int count, long firstWord, long lastWord) {}

  /** Fills a taken buffer with {@code count} pages whose words say their GFN, and submits them. */
  static void submit(RunInstaller in, long first, int count) throws Exception {
    ByteBuffer b = in.take();
    for (int i = 0; i < count * Wire.PAGE; i += 8) {
      b.putLong(i, first + i / Wire.PAGE);
    }
    in.submit(first, count, b);
  }

  @Test
  void everyRunGoesInInOrderOnTheInstallersThreadAndDrainWaitsForThem() throws Exception {
    List<Installed> seen = new CopyOnWriteArrayList<>();
    RunInstaller in = new RunInstaller((first, count, pages) -> seen.add(new Installed(Thread.currentThread(), first, count,
        pages.getLong(pages.position()), pages.getLong(pages.limit() - 8))));
    in.start();
    int runs = 10 * RunInstaller.DEPTH; // more than the ring: buffers come back and are reused
    for (int r = 0; r < runs; r++) {
      submit(in, r * 100L, 1 + r % StreamRun.PAGES);
    }
    in.drain();
    assertEquals(runs, seen.size(), "drain returns once every submitted run is in");
    for (int r = 0; r < runs; r++) {
      Installed i = seen.get(r);
      assertNotSame(Thread.currentThread(), i.thread(), "installed off the reader's thread");
      assertEquals(r * 100L, i.first());
      assertEquals(1 + r % StreamRun.PAGES, i.count());
      assertEquals(r * 100L, i.firstWord(), "the run's own bytes, from its start");
      assertEquals(r * 100L + i.count() - 1, i.lastWord(), "and exactly its pages");
    }
    in.stop(5000);
  }

  @Test
  void aFailedInstallReachesTheReaderAndLaterRunsAreDropped() throws Exception {
    IllegalStateException boom = new IllegalStateException("boom");
    List<Long> seen = new CopyOnWriteArrayList<>();
    RunInstaller in = new RunInstaller((first, count, pages) -> {
      seen.add(first);
      if (first == 2) {
        throw boom;
      }
    });
    in.start();
    for (long r = 0; r < 3; r++) {
      try {
        submit(in, r, 1);
      } catch (IllegalStateException e) {
        assertSame(boom, e, "the last submit may see the failure already: the installer was quicker"); // and only the last
        assertEquals(2, r);
      }
    }
    assertSame(boom, assertThrows(IllegalStateException.class, in::drain), "drain rethrows it: the reader breaks the link");
    assertSame(boom, assertThrows(IllegalStateException.class, in::take), "and so does the next take");
    assertEquals(List.of(0L, 1L, 2L), seen);
    in.stop(5000);
  }

  @Test
  void stoppingStillInstallsWhatIsQueued() throws Exception {
    CountDownLatch release = new CountDownLatch(1);
    List<Long> seen = new CopyOnWriteArrayList<>();
    RunInstaller in = new RunInstaller((first, count, pages) -> {
      try {
        release.await();
      } catch (InterruptedException e) {
        throw new IllegalStateException(e);
      }
      seen.add(first);
    });
    in.start();
    for (long r = 0; r < RunInstaller.DEPTH; r++) {
      submit(in, r, 1);
    }
    in.stop(0); // the link broke: intact runs already queued still go in
    release.countDown();
    in.stop(10_000);
    assertEquals(java.util.stream.LongStream.range(0, RunInstaller.DEPTH).boxed().toList(), seen);
  }
}
