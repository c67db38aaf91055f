package dev.gmem.directmap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.TemporaryMapping;
import java.nio.ByteBuffer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@code Vm.populate} of a NO_DIRECT_MAP inode reaches its removed folios only through one scoped,
 * counted temporary mapping: the arch never gets a buffer over the secret memory (a GUP of it
 * works, where a GUP of secret memory fails), the content lands, the mapping closes with the call,
 * gmem's direct map cannot read the pages, and a failing arch changes nothing.
 */
class PopulateThroughTemporaryMappingTest {
  private static final long PAGE = 4096;
  private static final long SIZE = 16 * PAGE;

  @BeforeEach
  @AfterEach
  void reset() {
    RecordingArch.failPopulate = false;
    RecordingArch.POPULATE_TARGETS.clear();
  }

  private static ByteBuffer pages(int n, int value) {
    ByteBuffer b = ByteBuffer.allocateDirect((int) (n * PAGE));
    for (int i = 0; i < b.capacity(); i++) {
      b.put(i, (byte) (value + i / PAGE));
    }
    return b;
  }

  @ParameterizedTest
  @MethodSource("dev.gmem.directmap.Runtimes#backends")
  void populateGoesThroughOneScopedTemporaryMapping(String backend) {
    try (GmemRuntime rt = Runtimes.withRecordingArch(backend)) {
      DirectMapFeature dm = Runtimes.feature(rt);
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      try (GuestMemFile f = vm.createGuestMemFile(SIZE, GmemFlags.MMAP | GmemFlags.NO_DIRECT_MAP)) {
        long ino = f.inode().ino();
        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, SIZE, f, 0);
        TemporaryMapping.Stats before = dm.host.temporaryMappingStats();
        ByteBuffer src = pages(4, 0x30);
        assertEquals(4, vm.populate(2 * PAGE, src, 4, 0));

        TemporaryMapping.Stats after = dm.host.temporaryMappingStats();
        assertEquals(before.open(), after.open(), "no temporary mapping outlives the call");
        assertEquals(before.opened() + 1, after.opened(), "one temporary mapping for the call");
        assertEquals(before.pagesMapped() + 4, after.pagesMapped());
        assertTrue(after.bytesCopied() >= before.bytesCopied() + 8 * PAGE, "each page read into the bounce page and written back");

        assertEquals(4, RecordingArch.POPULATE_TARGETS.size());
        for (long target : RecordingArch.POPULATE_TARGETS) {
          assertEquals(0, KernelPaths.vmsplice(target, PAGE), "the arch wrote into ordinary memory, not a view of the secret pages");
        }
        try (GuestMemFile shared = vm.createGuestMemFile(SIZE, GmemFlags.MMAP | GmemFlags.INIT_SHARED | GmemFlags.NO_DIRECT_MAP);
            HostMapping m = shared.map()) {
          m.putLong(0, 1);
          assertEquals(Errno.EFAULT.code(), KernelPaths.vmsplice(m.address(), PAGE), "the same probe fails on a view of secret memory");
        }

        for (long i = 2; i < 6; i++) {
          assertTrue(dm.isRemoved(ino, i));
          assertEquals(Errno.EFAULT.code(), KernelPaths.copyFromUser(dm.linearAddress(ino) + i * PAGE, 8), "gmem's direct map cannot read page " + i);
        }
        try (TemporaryMapping t = dm.mapTemporarily(ino, 2, 4)) {
          ByteBuffer back = ByteBuffer.allocate((int) (4 * PAGE));
          t.read(0, back);
          for (int i = 0; i < 4; i++) {
            assertEquals((byte) (0x30 + i), back.get(i * (int) PAGE), "page " + (2 + i));
            assertEquals((byte) (0x30 + i), back.get((i + 1) * (int) PAGE - 1));
          }
        }
        assertEquals(before.open(), dm.host.temporaryMappingStats().open());
      }
    }
  }

  @ParameterizedTest
  @MethodSource("dev.gmem.directmap.Runtimes#backends")
  void aFailedPopulateChangesNoPage(String backend) {
    try (GmemRuntime rt = Runtimes.withRecordingArch(backend)) {
      DirectMapFeature dm = Runtimes.feature(rt);
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      try (GuestMemFile f = vm.createGuestMemFile(SIZE, GmemFlags.MMAP | GmemFlags.NO_DIRECT_MAP)) {
        long ino = f.inode().ino();
        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, SIZE, f, 0);
        RecordingArch.failPopulate = true;
        ByteBuffer src = pages(1, 0x41);
        assertEquals(Errno.EIO, assertThrows(GmemException.class, () -> vm.populate(0, src, 1, 0)).errno());
        assertEquals(0, dm.host.temporaryMappingStats().open(), "closed on the failure too");
        try (TemporaryMapping t = dm.mapTemporarily(ino, 0, 1)) {
          ByteBuffer back = ByteBuffer.allocate((int) PAGE);
          t.read(0, back);
          assertEquals(0, back.get(0), "the arch's write into its buffer did not reach the page");
        }
        RecordingArch.failPopulate = false;
        assertEquals(1, vm.populate(0, src, 1, 0), "the page was not marked populated: a retry works");
        assertFalse(RecordingArch.POPULATE_TARGETS.isEmpty());
        assertEquals(Errno.EEXIST, assertThrows(GmemException.class, () -> vm.populate(0, pages(1, 0), 1, 0)).errno());
        assertEquals(0, dm.host.temporaryMappingStats().open());
      }
    }
  }
}
