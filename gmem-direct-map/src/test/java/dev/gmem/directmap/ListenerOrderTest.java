package dev.gmem.directmap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.spi.CountingAllocator;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * v12's order, seen by an arch that asks the feature at each hook call: a folio is removed from
 * gmem's direct map before the arch prepares it (zap, then prepare), and is still removed when
 * the arch invalidates it (invalidate, then restore) — on punch, and across split and merge.
 */
class ListenerOrderTest {
  private static final long PAGE = 4096;

  @BeforeEach
  @AfterEach
  void reset() {
    RecordingArch.CALLS.clear();
    RecordingArch.removed = (ino, index) -> false;
  }

  private static List<RecordingArch.Call> calls(String hook, long ino) {
    return RecordingArch.CALLS.stream().filter(c -> c.hook().equals(hook) && c.ino() == ino).toList();
  }

  @ParameterizedTest
  @MethodSource("dev.gmem.directmap.Runtimes#backends")
  void zapBeforePrepareAndInvalidateBeforeRestore(String backend) {
    try (GmemRuntime rt = Runtimes.withRecordingArch(backend)) {
      DirectMapFeature dm = Runtimes.feature(rt);
      RecordingArch.removed = dm::isRemoved;
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      try (GuestMemFile f = vm.createGuestMemFile(16 * PAGE, GmemFlags.MMAP | GmemFlags.NO_DIRECT_MAP)) {
        long ino = f.inode().ino();
        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, 16 * PAGE, f, 0);
        assertNull(vm.softwareVcpu().write(2 * PAGE, new byte[] {1}, 0, 1, true), "a private guest write");
        List<RecordingArch.Call> prepares = calls("prepare", ino);
        assertEquals(1, prepares.size());
        assertTrue(prepares.get(0).removedThen(), "zapped before prepare");

        long restores = dm.stats().restores();
        f.punchHole(2 * PAGE, PAGE);
        List<RecordingArch.Call> invalidates = calls("invalidate", ino);
        assertEquals(1, invalidates.size());
        assertEquals(2, invalidates.get(0).index());
        assertTrue(invalidates.get(0).removedThen(), "still removed while the arch invalidates");
        assertFalse(dm.isRemoved(ino, 2), "restored after the invalidate");
        assertEquals(restores + 1, dm.stats().restores());
        vm.deleteMemoryRegion(0);
      }
    }
  }

  @ParameterizedTest
  @MethodSource("dev.gmem.directmap.Runtimes#backends")
  void splitAndMergeKeepTheFolioRemovedUntilItLeaves(String backend) {
    long size = 2L << 20;
    try (GmemRuntime rt = Runtimes.withRecordingArch(backend)) {
      DirectMapFeature dm = Runtimes.feature(rt);
      RecordingArch.removed = dm::isRemoved;
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      try (GuestMemFile f = vm.createGuestMemFile(size, GmemFlags.MMAP | GmemFlags.NO_DIRECT_MAP | CountingAllocator.BLOCKS)) {
        long ino = f.inode().ino();
        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, size, f, 0);
        assertNull(vm.softwareVcpu().write(0, new byte[] {1}, 0, 1, true));
        assertEquals(9, f.inode().orderAt(0), "one 2 MiB folio");
        assertEquals(512, dm.accounting(ino).orElseThrow().present());
        assertTrue(calls("prepare", ino).get(0).removedThen());

        f.setShareability(0, PAGE, Shareability.SHARED); // splits the folio
        assertTrue(dm.stats().splits() > 0, "the feature heard of the split");
        assertEquals(512, dm.accounting(ino).orElseThrow().present(), "same pages, still removed after the split");

        f.setShareability(0, PAGE, Shareability.PRIVATE); // merges it back
        assertTrue(dm.stats().merges() > 0, "the feature heard of the merge");
        assertEquals(9, f.inode().orderAt(0));
        assertEquals(512, dm.accounting(ino).orElseThrow().present());

        RecordingArch.CALLS.clear();
        f.punchHole(0, size);
        List<RecordingArch.Call> invalidates = calls("invalidate", ino);
        assertFalse(invalidates.isEmpty());
        assertTrue(invalidates.stream().allMatch(RecordingArch.Call::removedThen), "invalidate before restore");
        assertEquals(0, dm.accounting(ino).orElseThrow().present());
        assertFalse(dm.isRemoved(ino, 0));
        assertFalse(dm.isRemoved(ino, 511));
        vm.deleteMemoryRegion(0);
      }
    }
  }
}
