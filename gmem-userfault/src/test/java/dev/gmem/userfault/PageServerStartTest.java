package dev.gmem.userfault;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import dev.gmem.userfault.source.PageServer;
import dev.gmem.userfault.source.PageSink;
import dev.gmem.userfault.source.PageSource;
import java.nio.ByteBuffer;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.Test;

/** {@link PageServer#start}: one server per VM, and a failed start changes nothing. */
class PageServerStartTest {
  static final int PAGE = 4096;
  static final int PAGES = 16;

  /** Delivers what it is asked for, on the caller's thread. */
  static final class Answering implements PageSource {
    PageSink sink;

    @Override
    public void start(PageSink s) {
      sink = s;
    }

    @Override
    public void request(long gfn, boolean urgent) {
      byte[] page = new byte[PAGE];
      java.util.Arrays.fill(page, (byte) 0x5a);
      CRC32C c = new CRC32C();
      c.update(page);
      sink.page(gfn, ByteBuffer.wrap(page), (int) c.getValue());
    }

    @Override
    public void close() {}
  }

  /** Refuses to start. */
  static final class Refusing implements PageSource {
    @Override
    public void start(PageSink s) {
      throw new IllegalStateException("no snapshot");
    }

    @Override
    public void request(long gfn, boolean urgent) {}

    @Override
    public void close() {}
  }

  static Vm vm(GmemRuntime rt) {
    Vm vm = rt.createVm(VmType.DEFAULT);
    GuestMemFile f = vm.createGuestMemFile((long) PAGES * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
    vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, (long) PAGES * PAGE, f, 0);
    return vm;
  }

  @Test
  void aSecondServerIsEbusyAndNeverMarksPresentPagesMissingAgain() {
    try (GmemRuntime rt = Backends.open("memfd")) {
      Userfault uf = rt.feature(Userfault.class).orElseThrow();
      Vm vm = vm(rt);
      try (PageServer first = PageServer.start(uf, vm, new Answering())) {
        vm.guestMemory().storeLong(3L * PAGE, 0x1234); // faults page 3 in from the source, then the VMM writes
        GmemException e = assertThrows(GmemException.class, () -> PageServer.start(uf, vm, new Answering()));
        assertEquals(Errno.EBUSY, e.errno());
        assertFalse(uf.isMissing(vm, 3L * PAGE), "the refused second server marked a present page missing");
        assertEquals(0x1234, vm.guestMemory().loadLong(3L * PAGE));
        assertEquals(PAGES - 1, uf.bitmap(vm, 0).countSet());
      }
    }
  }

  @Test
  void aStartWhoseSourceRefusesLeavesBitsFlagsAndSupervisionAsTheyWere() {
    try (GmemRuntime rt = Backends.open("memfd")) {
      Userfault uf = rt.feature(Userfault.class).orElseThrow();
      Vm vm = vm(rt);
      uf.bitmap(vm, 0).set(7); // the VMM's own bit: kept
      IllegalStateException e = assertThrows(IllegalStateException.class, () -> PageServer.start(uf, vm, new Refusing()));
      assertEquals("no snapshot", e.getMessage());
      UserfaultBitmap b = uf.bitmap(vm, 0);
      assertEquals(1, b.countSet());
      assertTrue(b.isSet(7));
      Memslot m = vm.memslots().get(0);
      assertEquals(0, m.flags() & Userfault.MEM_USERFAULT, "the refused start left USERFAULT on the memslot");
      vm.guestMemory().storeLong(0, 42); // no supervisor, no flag: an ordinary access
      assertEquals(42, vm.guestMemory().loadLong(0));
      Answering next = new Answering();
      try (PageServer s = PageServer.start(uf, vm, next)) { // the supervision was given back
        assertSame(s, next.sink);
      }
    }
  }
}
