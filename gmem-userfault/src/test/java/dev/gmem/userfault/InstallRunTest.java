package dev.gmem.userfault;

import static dev.gmem.core.conformance.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** {@link Userfault#installRun}: a run of pages in one call, never over a page present since, nothing on bad input. */
class InstallRunTest {
  static final int PAGE = 4096;
  static final long GPA = 0x20_0000;
  static final int PAGES = 16;

  static Stream<String> backends() {
    return Backends.names();
  }

  static ByteBuffer run(int pages, int tag, boolean direct) {
    ByteBuffer b = (direct ? ByteBuffer.allocateDirect(pages * PAGE) : ByteBuffer.allocate(pages * PAGE)).order(ByteOrder.LITTLE_ENDIAN); // as the guest reads
    for (int i = 0; i < pages; i++) {
      b.putLong(i * PAGE + 8, tag * 1000L + i);
    }
    return b;
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aRunFillsTheMissingPagesAndSkipsThoseTheGuestWroteSince(String backend) {
    for (boolean direct : new boolean[] {false, true}) {
      try (GmemRuntime rt = Backends.open(backend)) {
        Userfault uf = rt.feature(Userfault.class).orElseThrow();
        Vm vm = rt.createVm(VmType.DEFAULT);
        GuestMemFile f = vm.createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD | Userfault.MEM_USERFAULT, GPA, PAGES * PAGE, f, 0);
        UserfaultBitmap b = uf.bitmap(vm, 0);
        b.setAll();
        byte[] early = new byte[PAGE];
        uf.install(vm, GPA + 5 * PAGE, ByteBuffer.wrap(early)); // a demand page, then the guest writes it
        vm.softwareVcpu().writeLong(GPA + 5 * PAGE + 8, 77, false);

        ByteBuffer r = run(8, 1, direct);
        r.position(PAGE); // the run starts at the buffer's position: pages 1..7 of it go to GPA+2..+8
        assertEquals(6, uf.installRun(vm, GPA + 2 * PAGE, r), "page 5 was present: skipped");
        assertEquals(PAGE, r.position(), "the caller's buffer is not consumed");
        for (int p = 2; p < 9; p++) {
          assertFalse(b.isSet(p), "page " + p + " resident");
        }
        assertTrue(b.isSet(1) && b.isSet(9), "nothing outside the run");
        assertEquals(77, vm.softwareVcpu().readLong(GPA + 5 * PAGE + 8, false), "what the guest wrote since stays");
        assertEquals(1001, vm.softwareVcpu().readLong(GPA + 2 * PAGE + 8, false));
        assertEquals(1007, vm.softwareVcpu().readLong(GPA + 8 * PAGE + 8, false));
        assertEquals(0, uf.installRun(vm, GPA + 2 * PAGE, run(2, 2, direct)), "a duplicate run installs nothing");
        assertEquals(1001, vm.softwareVcpu().readLong(GPA + 2 * PAGE + 8, false), "nor overwrites");
      }
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void badRunsAreEinvalAndChangeNothing(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Userfault uf = rt.feature(Userfault.class).orElseThrow();
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD | Userfault.MEM_USERFAULT, GPA, PAGES * PAGE, f, 0);
      UserfaultBitmap b = uf.bitmap(vm, 0);
      b.setAll();
      expect(Errno.EINVAL, () -> uf.installRun(vm, GPA, ByteBuffer.allocate(PAGE + 1)));
      expect(Errno.EINVAL, () -> uf.installRun(vm, GPA + (PAGES - 1) * PAGE, run(2, 3, false)));
      expect(Errno.EINVAL, () -> uf.installRun(vm, GPA - PAGE, run(1, 3, false)));
      assertEquals(PAGES, b.countSet(), "nothing installed");
    }
  }
}
