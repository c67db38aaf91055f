package dev.gmem.userfault;

import static dev.gmem.userfault.AsyncUserfaultTest.PAGE;
import static dev.gmem.userfault.AsyncUserfaultTest.PAGES;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vm;
import dev.gmem.core.conformance.Backends;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The bitmap counts only while a memslot has USERFAULT: memory outside such slots keeps core's
 * lock-free path with the feature active, and setting the flag late makes a set bit's page
 * missing again even for a host mapping that had reached it.
 */
class UserfaultFlagScopeTest {
  static Stream<String> backends() {
    return Backends.names();
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aSetBitCountsForHostAccessesOnlyOnceTheFlagIsSet(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Userfault uf = rt.feature(Userfault.class).orElseThrow();
      uf.deadline(Duration.ofMillis(200));
      Vm vm = AsyncUserfaultTest.vmWithSlot(rt, Memslot.GUEST_MEMFD);
      GuestMemFile f = vm.memslots().get(0).file();
      try (HostMapping m = f.map()) {
        m.putLong(3 * PAGE, 42);
        uf.bitmap(vm, 0).set(3);
        assertEquals(42, m.getLong(3 * PAGE), "flag clear: the present page takes no userfault");

        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD | Userfault.MEM_USERFAULT, 0, PAGES * PAGE, f, 0);
        GmemException e = assertThrows(GmemException.class, () -> m.getLong(3 * PAGE));
        assertEquals(Errno.EIO, e.errno(), "flag set late: the access waited for the page, which never came");

        byte[] page = new byte[(int) PAGE];
        ByteBuffer.wrap(page).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 0x3333);
        uf.install(vm, 3 * PAGE, ByteBuffer.wrap(page));
        assertEquals(0x3333, m.getLong(3 * PAGE), "installed content, not the old value");
      }
    }
  }
}
