package dev.gmem.core.convert;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import java.util.Arrays;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The scenario of the kernel's {@code private_mem_conversions_test}, with in-place conversion: a
 * guest (the software vCPU) asks the VMM to convert ranges, the VMM converts and optionally
 * punches holes; the host always sees the shared data, never a private write while the page is
 * private, and punched pages read zero. Several memslots map one file, as with the test's
 * {@code nr_memslots}.
 */
class PrivateMemConversionsTest {
  static final long PAGE = 4096;
  static final long CHUNK = (2L << 20) + PAGE; // per-vCPU chunk of the selftest: 2 MiB + 4 KiB
  static final long GPA = 4L << 30;
  static final int SLOTS = 2;

  static java.util.stream.Stream<String> backends() {
    return Backends.names();
  }

  /** The selftest's test ranges inside a chunk: (offset, size). */
  static final long[][] RANGES = {
    {0, PAGE}, {PAGE, PAGE}, {2 * PAGE, 3 * PAGE}, {0, 16 * PAGE}, {(2L << 20) - PAGE, 2 * PAGE}, {0, CHUNK},
  };

  @ParameterizedTest
  @MethodSource("backends")
  void guestDrivenConversionsKeepHostAndGuestViewsConsistent(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      try (GuestMemFile f = vm.createGuestMemFile(alignUp(CHUNK, SLOTS), GmemFlags.MMAP | GmemFlags.INIT_SHARED);
          HostMapping host = f.map()) {
        long per = f.size() / SLOTS;
        for (int s = 0; s < SLOTS; s++) {
          vm.setMemoryRegion(s, Memslot.GUEST_MEMFD, GPA + s * per, per, f, s * per);
        }
        SoftwareVcpu guest = vm.softwareVcpu();
        for (boolean punch : new boolean[] {false, true}) {
          for (long[] r : RANGES) {
            run(f, host, guest, r[0], r[1], punch);
          }
        }
      }
    }
  }

  private static long alignUp(long v, int slots) {
    long per = (v + slots * PAGE - 1) / (slots * PAGE) * PAGE;
    return per * slots;
  }

  private static void run(GuestMemFile f, HostMapping host, SoftwareVcpu guest, long off, long size, boolean punch) {
    byte p1 = (byte) 0x11;
    byte p2 = (byte) 0x22;
    byte p3 = (byte) 0x33;
    byte p4 = (byte) 0x44;
    // 1. The guest fills the range with p1 through shared accesses; the host sees p1.
    assertNull(guest.write(GPA + off, fill(size, p1), 0, (int) size, false));
    expectHost(host, off, size, p1);
    // 2. The host writes p2; the guest sees it.
    host.fill(off, size, p2);
    expectGuest(guest, off, size, false, p2);
    // 3. The guest asks for private (KVM_HC_MAP_GPA_RANGE); the VMM converts, maybe punches.
    f.setShareability(off, size, Shareability.PRIVATE);
    if (punch) {
      f.punchHole(off, size);
    }
    // 4. Private writes by the guest are invisible to the host. On SW_PROTECTED the page decides
    //    the kind of every guest access (kvm_mmu_page_fault), so the guest reads them whatever
    //    its access's bit.
    assertNull(guest.write(GPA + off, fill(size, p3), 0, (int) size, true));
    GmemException e = assertThrows(GmemException.class, () -> host.getByte(off + size - 1));
    assertEquals(Errno.EACCES, e.errno());
    expectGuest(guest, off, size, false, p3);
    expectGuest(guest, off, size, true, p3);
    // 5. Back to shared; a punch makes the range read zero, else the bytes stay (in place).
    f.setShareability(off, size, Shareability.SHARED);
    if (punch) {
      f.punchHole(off, size);
    }
    byte expected = punch ? 0 : p3;
    expectHost(host, off, size, expected);
    expectGuest(guest, off, size, false, expected);
    // 6. The host writes p4; the guest reads it.
    host.fill(off, size, p4);
    expectGuest(guest, off, size, false, p4);
  }

  private static byte[] fill(long size, byte v) {
    byte[] b = new byte[(int) size];
    Arrays.fill(b, v);
    return b;
  }

  private static void expectHost(HostMapping host, long off, long size, byte v) {
    byte[] b = new byte[(int) size];
    host.read(off, b, 0, b.length);
    assertArrayFilled(b, v, "host at 0x" + Long.toHexString(off));
  }

  private static void expectGuest(SoftwareVcpu guest, long off, long size, boolean priv, byte v) {
    byte[] b = new byte[(int) size];
    assertNull(guest.read(GPA + off, b, 0, b.length, priv));
    assertArrayFilled(b, v, "guest at 0x" + Long.toHexString(off));
  }

  private static void assertArrayFilled(byte[] b, byte v, String where) {
    for (int i = 0; i < b.length; i++) {
      if (b[i] != v) {
        assertEquals(v, b[i], where + " + " + i);
      }
    }
  }
}
