package dev.gmem.migrate;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** Test memory whose every page says what it should hold: never zero unless {@link #isZero}, so a zero read of another page is a failure. */
final class Pages {
  static final int PAGE = 4096;

  private Pages() {}

  /** Every seventh page is a zero page (sent as its own message). */
  static boolean isZero(long gfn) {
    return gfn % 7 == 3;
  }

  static byte[] content(long gfn) {
    ByteBuffer b = ByteBuffer.allocate(PAGE).order(ByteOrder.LITTLE_ENDIAN);
    if (!isZero(gfn)) {
      for (int i = 0; i < PAGE; i += 8) {
        b.putLong(i, gfn * 0x9E3779B97F4A7C15L + i + 1);
      }
    }
    return b.array();
  }

  /** A VM of {@code type} with one slot of {@code pages} pages at GPA 0, filled with {@link #content}. */
  static Vm vm(GmemRuntime rt, VmType type, long pages) {
    Vm vm = rt.createVm(type);
    GuestMemFile f = vm.createGuestMemFile(pages * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
    vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, pages * PAGE, f, 0);
    for (long g = 0; g < pages; g++) {
      vm.guestMemory().write(g * PAGE, content(g), 0, PAGE);
    }
    return vm;
  }
}
