package dev.gmem.arch.tdx.module;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.util.Random;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

/**
 * The measurement engine against digests updated inline with the same bytes: jobs of several
 * digests interleaved, more jobs than the ring holds (the producer waits, or runs jobs itself),
 * and MRTD with the engine against MRTD without it, over every path that touches the digest.
 */
class MeasurementEngineTest {
  private static final int PAGE = 4096;

  @Test
  void jobsOfInterleavedDigestsRunInPublishOrder() throws Exception {
    MeasurementEngine engine = new MeasurementEngine(() -> true);
    MessageDigest[] viaEngine = {MessageDigest.getInstance("SHA-384"), MessageDigest.getInstance("SHA-384")};
    MessageDigest[] inline = {MessageDigest.getInstance("SHA-384"), MessageDigest.getInstance("SHA-384")};
    Random r = new Random(3);
    long last = 0;
    for (int job = 0; job < 5 * MeasurementEngine.RING; job++) { // wraps the ring: the producer must wait or help
      int d = r.nextInt(2);
      byte[] bytes = new byte[(1 + r.nextInt(MeasurementEngine.JOB_BYTES / Mrtd.BLOCK)) * Mrtd.BLOCK];
      r.nextBytes(bytes);
      inline[d].update(bytes);
      byte[] slot = engine.claim(viaEngine[d]);
      System.arraycopy(bytes, 0, slot, 0, bytes.length);
      last = engine.publish(bytes.length);
    }
    engine.awaitDone(last);
    for (int d = 0; d < 2; d++) {
      assertArrayEquals(inline[d].digest(), viaEngine[d].digest(), "digest " + d);
    }
  }

  @Property(tries = 30)
  void mrtdIsTheSameWithAndWithoutTheEngine(@ForAll @IntRange(min = 1, max = 40) int pages, @ForAll long seed) {
    Random r = new Random(seed);
    MeasurementEngine engine = new MeasurementEngine(() -> true);
    Mrtd piped = new Mrtd(engine);
    Mrtd inline = new Mrtd(null);
    piped.pipeline(true);
    inline.pipeline(true); // no engine: stays inline
    byte[] image = new byte[pages * PAGE];
    r.nextBytes(image);
    ByteBuffer src = ByteBuffer.wrap(image);
    for (int p = 0; p < pages; p++) {
      long gpa = (long) r.nextInt(1 << 20) << 12;
      switch (r.nextInt(4)) {
        case 0: // unmeasured
          piped.addPage(gpa, src, p * PAGE, false);
          inline.addPage(gpa, src, p * PAGE, false);
          break;
        case 1: // the chunk-wise slow path (an injected failure queued): must see the engine's pages first
          piped.pageAdd(gpa);
          inline.pageAdd(gpa);
          for (int c = 0; c < PAGE / Mrtd.CHUNK; c++) {
            piped.extendChunk(gpa + c * Mrtd.CHUNK, src, p * PAGE + c * Mrtd.CHUNK);
            inline.extendChunk(gpa + c * Mrtd.CHUNK, src, p * PAGE + c * Mrtd.CHUNK);
          }
          break;
        default:
          piped.addPage(gpa, src, p * PAGE, true);
          inline.addPage(gpa, src, p * PAGE, true);
      }
    }
    Mrtd moved = piped.copy(engine); // a context move copies a drained digest
    piped.finish();
    inline.finish();
    moved.finish();
    assertArrayEquals(inline.value(), piped.value());
    assertArrayEquals(inline.value(), moved.value());
  }
}
