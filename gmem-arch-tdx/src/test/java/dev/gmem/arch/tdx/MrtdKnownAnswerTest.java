package dev.gmem.arch.tdx;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Random;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

/**
 * MRTD against the TDX module's rule written out here, independently of the plugin: per page a
 * 128-byte block {"MEM.PAGE.ADD", zero-padded to 16 bytes; the GPA as a little-endian u64 at byte
 * 16; zeros} and, when measured, for each 256-byte chunk a block {"MR.EXTEND"; the chunk's GPA}
 * followed by the chunk; SHA-384 over all of it (intel/tdx-module tdh_mem_page_add.c,
 * tdh_mr_extend.c; Linux tdx_gmem_post_populate). Plus a constant computed outside Java
 * (Python's hashlib over the same bytes), and the properties: the same image and layout give the
 * same MRTD, one changed byte changes it.
 */
class MrtdKnownAnswerTest {
  private static final int PAGE = 4096;

  /** The rule, byte by byte. */
  static byte[] expectedMrtd(long[] gpas, byte[][] pages, boolean[] measured) throws Exception {
    MessageDigest sha = MessageDigest.getInstance("SHA-384");
    for (int p = 0; p < gpas.length; p++) {
      sha.update(block("MEM.PAGE.ADD", gpas[p]));
      if (measured[p]) {
        for (int c = 0; c < PAGE / 256; c++) {
          sha.update(block("MR.EXTEND", gpas[p] + c * 256L));
          sha.update(pages[p], c * 256, 256);
        }
      }
    }
    return sha.digest();
  }

  private static byte[] block(String apiName, long gpa) {
    byte[] b = new byte[128];
    for (int i = 0; i < apiName.length(); i++) {
      b[i] = (byte) apiName.charAt(i);
    }
    for (int i = 0; i < 8; i++) {
      b[16 + i] = (byte) (gpa >>> (8 * i));
    }
    return b;
  }

  @Test
  void oneMeasuredZeroPageMatchesAConstantComputedOutsideJava() {
    try (Td td = new Td(16 * PAGE)) {
      td.populate(Td.BASE, new byte[PAGE], TdxAbi.MEASURE_MEMORY_REGION);
      td.vm.finalizeLaunch();
      // python3: sha384(hdr(b'MEM.PAGE.ADD',0x100000) + Σ hdr(b'MR.EXTEND',0x100000+256i) + zeros(256))
      assertEquals("d83467a3b349c17193dc14b12221f72ee7800c5560401bb7236cfa49f8e4ff2a18373457d28535a4ffa6d7ab5f3cafa4",
          HexFormat.of().formatHex(td.module.mrtd()));
    }
  }

  @Test
  void anUnmeasuredPageExtendsOnlyItsGpa() {
    try (Td td = new Td(16 * PAGE)) {
      byte[] junk = new byte[PAGE];
      new Random(7).nextBytes(junk);
      td.populate(Td.BASE, junk, 0);
      td.vm.finalizeLaunch();
      assertEquals("30739fc015b6f3734f7684e90531f2d634cff74b38357fd6094b6d8a5c5789241d55fcfc6410d564e659255bc2d89805",
          HexFormat.of().formatHex(td.module.mrtd()), "PAGE.ADD measures the GPA, not the contents");
    }
  }

  @Test
  void aMixedImageMatchesTheRuleWrittenOut() throws Exception {
    byte[][] pages = new byte[5][PAGE];
    Random r = new Random(42);
    for (byte[] p : pages) {
      r.nextBytes(p);
    }
    long[] gpas = new long[5];
    boolean[] measured = {true, true, false, true, false};
    try (Td td = new Td(64 * PAGE)) {
      // Pages in a non-sequential layout, each measured or not, as a TD's firmware volumes and hand-off blocks are.
      long[] slots = {3, 0, 9, 10, 40};
      for (int i = 0; i < pages.length; i++) {
        gpas[i] = Td.BASE + slots[i] * PAGE;
        td.populate(gpas[i], pages[i], measured[i] ? TdxAbi.MEASURE_MEMORY_REGION : 0);
      }
      td.vm.finalizeLaunch();
      assertArrayEquals(expectedMrtd(gpas, pages, measured), td.module.mrtd());
      assertEquals(48, td.module.mrtd().length);
      assertEquals(3 * 16, td.module.seamcalls().stream().filter(s -> s.call() == Seamcall.TDH_MR_EXTEND).count());
    }
  }

  @Test
  void mrtdIsReadableOnlyAfterFinalize() {
    try (Td td = new Td(4 * PAGE)) {
      td.populate(Td.BASE, new byte[PAGE], TdxAbi.MEASURE_MEMORY_REGION);
      assertEquals(Errno.EINVAL, assertThrows(GmemException.class, td.module::mrtd).errno());
      td.vm.finalizeLaunch();
      assertEquals(48, td.module.mrtd().length);
    }
  }

  /** Builds a TD from {@code image} at {@code gpa}, measured, and returns its MRTD. */
  static byte[] mrtdOf(String backend, long gpa, byte[] image) {
    try (Td td = new Td(backend, 64 * PAGE)) {
      td.populate(gpa, image, TdxAbi.MEASURE_MEMORY_REGION);
      td.vm.finalizeLaunch();
      return td.module.mrtd();
    }
  }

  @Property(tries = 25)
  void theSameImageAndLayoutGiveTheSameMrtdAndOneByteChangesIt(
      @ForAll @IntRange(min = 1, max = 4) int pages, @ForAll @IntRange(min = 0, max = 4 * PAGE - 1) int at,
      @ForAll @IntRange(min = 1, max = 255) int flip, @ForAll long seed) throws Exception {
    byte[] image = new byte[pages * PAGE];
    new Random(seed).nextBytes(image);
    int index = at % image.length;
    byte[] changed = Arrays.copyOf(image, image.length);
    changed[index] ^= (byte) flip;

    byte[] first = mrtdOf("kvm", Td.BASE, image);
    assertArrayEquals(first, mrtdOf("memfd", Td.BASE, image), "same image and layout, another backend: same MRTD");
    assertFalse(Arrays.equals(first, mrtdOf("kvm", Td.BASE, changed)), "byte " + index + " changed: MRTD must change");
    assertFalse(Arrays.equals(first, mrtdOf("kvm", Td.BASE + PAGE, image)), "same image one page higher: MRTD must change");

    long[] gpas = new long[pages];
    byte[][] contents = new byte[pages][];
    boolean[] measured = new boolean[pages];
    for (int p = 0; p < pages; p++) {
      gpas[p] = Td.BASE + (long) p * PAGE;
      contents[p] = Arrays.copyOfRange(image, p * PAGE, (p + 1) * PAGE);
      measured[p] = true;
    }
    assertArrayEquals(expectedMrtd(gpas, contents, measured), first);
  }
}
