package dev.gmem.arch.snp;

import static dev.gmem.arch.snp.SnpVms.PAGE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.HexFormat;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.BeforeContainer;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The launch digest against the SEV-SNP firmware ABI's PAGE_INFO chain written out here byte by
 * byte (not through the plugin), against a value computed outside Java (Python's hashlib over the
 * same PAGE_INFO bytes, as virtee's sev-snp-measure does), and the property that one changed byte
 * of the image, or one changed GPA, changes it.
 */
class LaunchDigestTest {
  static final long GPA = 0x10_0000;
  /**
   * sev-snp-measure's algorithm (gctx.py) run in Python for: NORMAL pages 0 and 1 of
   * {@link SnpVms#image} at 0x100000, a ZERO page at 0x102000, a CPUID page at 0x103000.
   */
  static final String PYTHON_DIGEST =
      "012b6c612db3694c916fa792d0a371501ffba39acf87b5fc223a44a14d0657936a2f116d33ee1313eb02099b1d13f95b";

  static java.util.stream.Stream<String> backends() {
    return SnpVms.backends();
  }

  /** PAGE_INFO (SNP ABI §8.17.2, Table 67) written out field by field; returns SHA-384 of it. */
  static byte[] extend(byte[] ld, int pageType, long gpa, byte[] page) throws Exception {
    MessageDigest sha = MessageDigest.getInstance("SHA-384");
    byte[] info = new byte[0x70];
    System.arraycopy(ld, 0, info, 0, 48);                       // DIGEST_CUR
    if (page != null) {
      System.arraycopy(sha.digest(page), 0, info, 0x30, 48);    // CONTENTS
    }
    info[0x60] = 0x70;                                          // LENGTH, little-endian u16
    info[0x61] = 0;
    info[0x62] = (byte) pageType;                               // PAGE_TYPE
    // 0x63 IMI_PAGE, 0x64..0x66 VMPL3..1 perms, 0x67 reserved: all zero
    for (int i = 0; i < 8; i++) {
      info[0x68 + i] = (byte) (gpa >>> (8 * i));                // GPA, little-endian u64
    }
    return sha.digest(info);
  }

  static byte[] pageOf(ByteBuffer image, int i) {
    return Arrays.copyOfRange(image.array(), i * PAGE, (i + 1) * PAGE);
  }

  /** Builds the known-answer image: 2 NORMAL, 1 ZERO, 1 CPUID page; returns the digest after finish. */
  static SnpArch launch(GmemRuntime rt, ByteBuffer image) {
    Vm vm = rt.createVm(VmType.SNP);
    GuestMemFile f = vm.createGuestMemFile(8 * PAGE, GmemFlags.MMAP);
    vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 8 * PAGE, f, 0);
    SnpArch snp = SnpVms.arch(vm);
    assertEquals(2, vm.populate(GPA, image.duplicate(), 2, PageType.NORMAL.value()));
    assertEquals(1, vm.populate(GPA + 2 * PAGE, null, 1, PageType.ZERO.value()));
    assertEquals(1, vm.populate(GPA + 3 * PAGE, SnpVms.cpuidPage(0x8000_001f, 1, 2, 3, 4), 1, PageType.CPUID.value()));
    assertNull(snp.measurement());
    vm.finalizeLaunch();
    return snp;
  }

  @ParameterizedTest
  @MethodSource("backends")
  void theDigestIsTheAbisPageInfoChain(String backend) throws Exception {
    ByteBuffer image = SnpVms.image(2);
    byte[] ld = new byte[48];
    ld = extend(ld, 1, GPA, pageOf(image, 0));
    ld = extend(ld, 1, GPA + PAGE, pageOf(image, 1));
    ld = extend(ld, 3, GPA + 2 * PAGE, null);
    ld = extend(ld, 6, GPA + 3 * PAGE, null);
    try (GmemRuntime rt = SnpVms.runtime(backend)) {
      SnpArch snp = launch(rt, image);
      assertArrayEquals(ld, snp.measurement());
      assertEquals(PYTHON_DIGEST, HexFormat.of().formatHex(ld), "the write-out agrees with sev-snp-measure's algorithm");
      assertEquals(PYTHON_DIGEST, snp.launchDigestHex());
      assertArrayEquals(ld, launch(rt, image).measurement(), "the same image and layout: the same measurement");
    }
  }

  /**
   * One flipped bit anywhere in a two-page image, or the image populated one page higher, changes
   * the measurement an SNP VM ends its launch with (through {@code Vm.populate} on the memfd
   * backend, one runtime for every try).
   */
  @Property(tries = 30)
  void oneChangedByteOrGpaChangesTheMeasurement(@ForAll @IntRange(min = 0, max = 2 * PAGE - 1) int at, @ForAll boolean moveGpa) {
    ByteBuffer changed = SnpVms.image(2);
    long gpa = GPA;
    if (moveGpa) {
      gpa += PAGE;
    } else {
      changed.put(at, (byte) (changed.get(at) ^ (1 << (at & 7))));
    }
    assertFalse(Arrays.equals(measure(SnpVms.image(2), GPA), measure(changed, gpa)));
  }

  private static GmemRuntime shared;

  @BeforeContainer
  static void open() {
    shared = SnpVms.runtime("memfd");
  }

  @AfterContainer
  static void close() {
    shared.close();
  }

  private static byte[] measure(ByteBuffer image, long gpa) {
    Vm vm = shared.createVm(VmType.SNP);
    try {
      GuestMemFile f = vm.createGuestMemFile(4 * PAGE, GmemFlags.MMAP);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 4 * PAGE, f, 0);
      assertEquals(2, vm.populate(gpa, image, 2, PageType.NORMAL.value()));
      vm.finalizeLaunch();
      f.close();
      return SnpVms.arch(vm).measurement();
    } finally {
      vm.close();
    }
  }
}
