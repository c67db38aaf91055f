package dev.gmem.userfault;

import static org.junit.jupiter.api.Assertions.assertEquals;

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
import java.util.ArrayList;
import java.util.List;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.Test;

/**
 * {@link PageSink} may be called from any thread: a source that delivers a page twice at once
 * (two connections, a retry racing the original) must not let the late copy overwrite what the
 * VMM wrote as soon as the first copy made the page present.
 */
class ConcurrentDeliveryTest {
  static final int PAGE = 4096;
  static final int PAGES = 2048;

  /** Delivers every page from two threads at once. */
  static final class TwiceSource implements PageSource {
    final List<Thread> threads = new ArrayList<>();

    @Override
    public void start(PageSink sink) {
      for (int t = 0; t < 2; t++) {
        Thread th = new Thread(() -> {
          byte[] page = new byte[PAGE];
          java.util.Arrays.fill(page, (byte) 0x11);
          CRC32C c = new CRC32C();
          c.update(page);
          int crc = (int) c.getValue();
          for (long g = 0; g < PAGES; g++) {
            sink.page(g, ByteBuffer.wrap(page), crc);
          }
        }, "twice-" + t);
        threads.add(th);
      }
      threads.forEach(Thread::start);
    }

    @Override
    public void request(long gfn, boolean urgent) {}

    @Override
    public void close() {
      for (Thread t : threads) {
        try {
          t.join();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }
    }
  }

  @Test
  void aLateSecondCopyNeverOverwritesWhatWasWrittenAfterTheFirst() throws Exception {
    try (GmemRuntime rt = Backends.open("memfd")) {
      Userfault uf = rt.feature(Userfault.class).orElseThrow();
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile((long) PAGES * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, (long) PAGES * PAGE, f, 0);
      TwiceSource source = new TwiceSource();
      try (PageServer server = PageServer.start(uf, vm, source)) {
        for (long g = 0; g < PAGES; g++) {
          while (uf.isMissing(vm, g * PAGE)) {
            Thread.onSpinWait();
          }
          vm.guestMemory().storeLong(g * PAGE, 0x7777_0000L + g); // the VMM's write, once the page is present
        }
        for (Thread t : source.threads) {
          t.join();
        }
        int lost = 0;
        for (long g = 0; g < PAGES; g++) {
          if (vm.guestMemory().loadLong(g * PAGE) != 0x7777_0000L + g) {
            lost++;
          }
        }
        assertEquals(0, lost, "writes made after a page arrived and overwritten by its second copy");
      }
    }
  }
}
