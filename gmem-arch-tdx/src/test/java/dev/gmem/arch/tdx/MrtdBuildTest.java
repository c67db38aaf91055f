package dev.gmem.arch.tdx;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * MRTD of whole builds against the TDX module's rule written out in {@link MrtdKnownAnswerTest}:
 * a long image in one call (the source free for reuse once populate returns), a populate that
 * stops early (exactly its pages measured), and two TDs of one runtime built at the same time
 * from two threads (each its own MRTD).
 */
class MrtdBuildTest {
  private static final int PAGE = (int) Td.PAGE;

  private static byte[] image(int pages, long seed) {
    byte[] b = new byte[pages * PAGE];
    new Random(seed).nextBytes(b);
    return b;
  }

  /** The rule for {@code image} measured page by page from {@code gpa}. */
  private static byte[] expected(long gpa, byte[] image) throws Exception {
    int pages = image.length / PAGE;
    long[] gpas = new long[pages];
    byte[][] contents = new byte[pages][];
    boolean[] measured = new boolean[pages];
    for (int p = 0; p < pages; p++) {
      gpas[p] = gpa + (long) p * PAGE;
      contents[p] = Arrays.copyOfRange(image, p * PAGE, (p + 1) * PAGE);
      measured[p] = true;
    }
    return MrtdKnownAnswerTest.expectedMrtd(gpas, contents, measured);
  }

  @Test
  void aLongImageMatchesTheRuleAndItsSourceIsFreeOnceCalled() throws Exception {
    byte[] img = image(48, 11);
    byte[] want = expected(Td.BASE, img);
    try (Td td = new Td(64 * PAGE)) {
      assertEquals(48, td.vm.populate(Td.BASE, ByteBuffer.wrap(img), 48, TdxAbi.MEASURE_MEMORY_REGION));
      Arrays.fill(img, (byte) 0x5a); // the VMM reuses its buffer: nothing of it may still be read
      td.vm.finalizeLaunch();
      assertArrayEquals(want, td.module.mrtd());
    }
  }

  @Test
  void aPopulateThatStopsEarlyHasMeasuredExactlyItsPages() throws Exception {
    byte[] img = image(10, 12);
    try (Td td = new Td(64 * PAGE)) {
      byte[] fifth = Arrays.copyOfRange(img, 5 * PAGE, 6 * PAGE);
      td.populate(Td.BASE + 5L * PAGE, fifth, TdxAbi.MEASURE_MEMORY_REGION);
      // Pages 0-4 go in; page 5 was added already (EEXIST on a later page: the call returns the progress).
      assertEquals(5, td.vm.populate(Td.BASE, ByteBuffer.wrap(img), 10, TdxAbi.MEASURE_MEMORY_REGION));
      td.vm.finalizeLaunch();
      long[] gpas = new long[6];
      byte[][] contents = new byte[6][];
      boolean[] measured = new boolean[6];
      gpas[0] = Td.BASE + 5L * PAGE;
      contents[0] = fifth;
      measured[0] = true;
      for (int p = 0; p < 5; p++) {
        gpas[p + 1] = Td.BASE + (long) p * PAGE;
        contents[p + 1] = Arrays.copyOfRange(img, p * PAGE, (p + 1) * PAGE);
        measured[p + 1] = true;
      }
      assertArrayEquals(MrtdKnownAnswerTest.expectedMrtd(gpas, contents, measured), td.module.mrtd());
    }
  }

  @Test
  void twoTdsOfOneRuntimeBuiltAtOnceEachGetTheirOwnMrtd() throws Exception {
    byte[] imgA = image(40, 21);
    byte[] imgB = image(40, 22);
    try (Td a = new Td(64 * PAGE)) {
      Vm vmB = a.rt.createVm(VmType.TDX);
      GuestMemFile fileB = vmB.createGuestMemFile(64L * PAGE, GmemFlags.MMAP);
      vmB.setMemoryRegion(0, Memslot.GUEST_MEMFD, Td.BASE, 64L * PAGE, fileB, 0);
      CompletableFuture<Long> other = CompletableFuture.supplyAsync(
          () -> vmB.populate(Td.BASE, ByteBuffer.wrap(imgB), 40, TdxAbi.MEASURE_MEMORY_REGION));
      assertEquals(40, a.vm.populate(Td.BASE, ByteBuffer.wrap(imgA), 40, TdxAbi.MEASURE_MEMORY_REGION));
      assertEquals(40, other.get());
      a.vm.finalizeLaunch();
      vmB.finalizeLaunch();
      assertArrayEquals(expected(Td.BASE, imgA), a.module.mrtd());
      assertArrayEquals(expected(Td.BASE, imgB), vmB.arch(TdxModule.class).orElseThrow().mrtd());
      fileB.close();
      vmB.close();
    }
  }
}
