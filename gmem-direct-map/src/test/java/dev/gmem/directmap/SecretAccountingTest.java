package dev.gmem.directmap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.VmType;
import java.nio.ByteBuffer;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Secret memory cannot be punched (EOPNOTSUPP) nor advised away (EINVAL): a punched page is
 * zeroed and stays charged to its inode until the inode goes, and the accounting says so.
 */
class SecretAccountingTest {
  private static final long PAGE = 4096;

  @ParameterizedTest
  @MethodSource("dev.gmem.directmap.Runtimes#backends")
  void punchZeroesAndHoldsUntilEviction(String backend) {
    try (GmemRuntime rt = Runtimes.open(backend)) {
      DirectMapFeature dm = Runtimes.feature(rt);
      long released = dm.stats().releasedBytes();
      long ino;
      try (GuestMemFile f = rt.createVm(VmType.DEFAULT).createGuestMemFile(16 * PAGE,
              GmemFlags.MMAP | GmemFlags.INIT_SHARED | GmemFlags.NO_DIRECT_MAP | GmemFlags.WRITE);
          HostMapping m = f.map()) {
        ino = f.inode().ino();
        ByteBuffer four = ByteBuffer.allocate((int) (4 * PAGE));
        while (four.hasRemaining()) {
          four.put((byte) 0x77);
        }
        four.flip();
        f.write(0, four);
        assertEquals(new DirectMap.InodeAccounting(ino, 16, 4, 4, 0), dm.accounting(ino).orElseThrow());

        f.punchHole(PAGE, 2 * PAGE);
        assertEquals(new DirectMap.InodeAccounting(ino, 16, 2, 4, 2), dm.accounting(ino).orElseThrow(),
            "two pages left the filemap; the secret memory still holds them");
        assertEquals(2, f.inode().allocatedPages());

        f.write(PAGE, ByteBuffer.allocate((int) PAGE)); // a punched page may be written again: it is absent
        assertEquals(new DirectMap.InodeAccounting(ino, 16, 3, 4, 1), dm.accounting(ino).orElseThrow());
        assertEquals(0, m.getLong(3 * PAGE - 8), "the punched page was zeroed"); // faults page 2 back in
        assertEquals(new DirectMap.InodeAccounting(ino, 16, 4, 4, 0), dm.accounting(ino).orElseThrow());
        assertEquals(0x77, m.getByte(3 * PAGE));

        f.allocate(8 * PAGE, 2 * PAGE); // fallocate on secret memory: faulted in through a temporary mapping
        assertEquals(new DirectMap.InodeAccounting(ino, 16, 6, 6, 0), dm.accounting(ino).orElseThrow());
        f.punchHole(8 * PAGE, PAGE);
        assertEquals(6 * PAGE, dm.stats().residentBytes());
        assertEquals(PAGE, dm.stats().heldBytes());
      }
      assertTrue(dm.accounting(ino).isEmpty(), "the inode was evicted");
      assertEquals(released + 6 * PAGE, dm.stats().releasedBytes());
      assertEquals(0, dm.stats().inodes());
      assertEquals(0, dm.stats().residentBytes());
    }
  }
}
