package dev.gmem.arch.tdx;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.Shareability;
import dev.gmem.api.VmType;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The build phase on the real runtime (kvm: a real guest_memfd on a DEFAULT KVM VM; memfd), and
 * every bad input of it with KVM's errno and nothing changed: the S-EPT, the SEAMCALL log, the
 * TD's state, the pages' shareability and contents and MRTD are compared before and after.
 */
class TdBuildTest {
  private static final long PAGE = Td.PAGE;

  /** What a refused call must leave as it was. */
  private record Snapshot(TdState state, List<SeptEntry> sept, int seamcalls, Shareability shareability, boolean dead) {
    static Snapshot of(Td td) {
      return new Snapshot(td.module.state(), td.module.septEntries(), td.module.seamcalls().size(),
          td.file.shareability(0, td.file.size()).orElse(null), td.vm.isDead());
    }
  }

  private static void refused(Td td, Errno errno, Executable call) {
    Snapshot before = Snapshot.of(td);
    GmemException e = assertThrows(GmemException.class, call::execute);
    assertEquals(errno, e.errno(), e.getMessage());
    assertEquals(before, Snapshot.of(td), "a refused call changes nothing");
  }

  private interface Executable {
    void execute() throws Throwable;
  }

  private static byte[] image(int pages, long seed) {
    byte[] b = new byte[pages * (int) PAGE];
    new Random(seed).nextBytes(b);
    return b;
  }

  @ParameterizedTest
  @ValueSource(strings = {"kvm", "memfd"})
  void populateAddsMappedPagesWithTheImageAndTheGuestSeesThemAfterFinalize(String backend) {
    try (Td td = new Td(backend, 8 * PAGE)) {
      assertEquals(TdState.INITIALIZED, td.module.state());
      byte[] img = image(2, 1);
      td.populate(Td.BASE, img, TdxAbi.MEASURE_MEMORY_REGION);
      List<SeptEntry> sept = td.module.septEntries();
      assertEquals(2, sept.size());
      for (int i = 0; i < 2; i++) {
        assertEquals(new SeptEntry(Td.BASE + i * PAGE, td.module.pamt(sept.get(i).page()).orElseThrow().page(), 0, SeptState.MAPPED, true), sept.get(i));
      }
      assertEquals(List.of(Seamcall.TDH_MEM_PAGE_ADD), td.module.seamcalls().stream().map(SeamcallRecord::call).distinct().limit(1).toList());
      td.vm.finalizeLaunch();
      assertEquals(TdState.RUNNABLE, td.module.state());
      byte[] seen = new byte[img.length];
      assertNull(td.vm.softwareVcpu().read(Td.BASE, seen, 0, seen.length, true), "added pages are mapped: no #VE");
      assertArrayEquals(img, seen);
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"kvm", "memfd"})
  void populateInPlaceMeasuresThePagesOwnContents(String backend) throws Exception {
    byte[] img = image(1, 3);
    byte[] viaSource;
    try (Td td = new Td(backend, 4 * PAGE)) {
      td.populate(Td.BASE, img, TdxAbi.MEASURE_MEMORY_REGION);
      td.vm.finalizeLaunch();
      viaSource = td.module.mrtd();
    }
    try (Td td = new Td(backend, 4 * PAGE)) {
      // The VMM writes the image while the page is shared, converts it to private, populates with no source.
      td.file.setShareability(0, PAGE, Shareability.SHARED);
      try (var m = td.file.map()) {
        m.write(0, img, 0, img.length);
      }
      td.file.setShareability(0, PAGE, Shareability.PRIVATE);
      assertEquals(1, td.vm.populate(Td.BASE, null, 1, TdxAbi.MEASURE_MEMORY_REGION));
      td.vm.finalizeLaunch();
      assertArrayEquals(viaSource, td.module.mrtd());
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"kvm", "memfd"})
  void badPopulatesAreRefusedWithKvmsErrnoAndChangeNothing(String backend) {
    try (Td td = new Td(backend, 8 * PAGE)) {
      ByteBuffer page = ByteBuffer.allocate((int) PAGE);
      td.populate(Td.BASE, new byte[(int) PAGE], 0);
      refused(td, Errno.EINVAL, () -> td.vm.populate(Td.BASE + PAGE, page.duplicate(), 1, 2)); // unknown flag
      refused(td, Errno.EINVAL, () -> td.vm.populate(Td.BASE + PAGE + 1, page.duplicate(), 1, 0)); // unaligned GPA
      refused(td, Errno.EINVAL, () -> td.vm.populate(Td.BASE + PAGE, page.duplicate(), 0, 0)); // no pages
      refused(td, Errno.EINVAL, () -> td.vm.populate(Td.BASE + PAGE, page.duplicate(), 2, 0)); // source too short
      refused(td, Errno.EINVAL, () -> td.vm.populate((Td.BASE + PAGE) | TdxAbi.SHARED_BIT, page.duplicate(), 1, 0)); // shared GPA
      refused(td, Errno.EINVAL, () -> td.vm.populate(0, page.duplicate(), 1, 0)); // in no memslot
      refused(td, Errno.EEXIST, () -> td.vm.populate(Td.BASE, page.duplicate(), 1, 0)); // added already
      td.file.setShareability(2 * PAGE, PAGE, Shareability.SHARED);
      refused(td, Errno.EINVAL, () -> td.vm.populate(Td.BASE + 2 * PAGE, page.duplicate(), 1, 0)); // not private
      refused(td, Errno.EINVAL, td.module::mrtd);
      refused(td, Errno.EINVAL, () -> td.vm.softwareVcpu().read(Td.BASE + 3 * PAGE, new byte[8], 0, 8, true)); // no AUG before finalize
      refused(td, Errno.EINVAL, () -> td.vm.softwareVcpu().read(Td.BASE, new byte[8], 0, 8, true)); // an added page too: no vCPU runs yet
      refused(td, Errno.EINVAL, () -> td.vm.softwareVcpu().hypercall(TdxAbi.TDG_MEM_PAGE_ACCEPT, Td.BASE));

      td.vm.finalizeLaunch();
      byte[] mrtd = td.module.mrtd();
      refused(td, Errno.EINVAL, () -> td.vm.populate(Td.BASE + PAGE, page.duplicate(), 1, 0)); // after finalize
      refused(td, Errno.EINVAL, td.vm::finalizeLaunch); // twice
      assertArrayEquals(mrtd, td.module.mrtd());
      assertNull(td.vm.softwareVcpu().read(Td.BASE, new byte[8], 0, 8, true), "after finalize the guest reads the added page");
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"kvm", "memfd"})
  void initSharedAndNoDirectMapAreRefused(String backend) {
    try (Td td = new Td(backend, PAGE)) {
      assertEquals(VmType.TDX, td.vm.type());
      assertEquals(0, td.vm.supportedGuestMemFlags() & (GmemFlags.INIT_SHARED | GmemFlags.NO_DIRECT_MAP));
      assertEquals(Errno.EINVAL, assertThrows(GmemException.class, () -> td.vm.createGuestMemFile(PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED)).errno());
      assertEquals(Errno.EINVAL, assertThrows(GmemException.class, () -> td.vm.createGuestMemFile(PAGE, GmemFlags.MMAP | GmemFlags.NO_DIRECT_MAP)).errno());
      assertFalse(td.hooks().supportsInitShared());
      assertFalse(td.hooks().supportsNoDirectMap());
      assertEquals(Shareability.PRIVATE, td.file.shareability(0), "a TD's memory starts private");
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"kvm", "memfd"})
  void pageAddBusyIsEbusyAndChangesNothingOtherFailuresKillTheVm(String backend) {
    try (Td td = new Td(backend, 4 * PAGE)) {
      td.module.injectFailure(Seamcall.TDH_MEM_PAGE_ADD, TdxAbi.TDX_OPERAND_BUSY);
      List<SeptEntry> before = td.module.septEntries();
      GmemException busy = assertThrows(GmemException.class, () -> td.vm.populate(Td.BASE, ByteBuffer.allocate((int) PAGE), 1, TdxAbi.MEASURE_MEMORY_REGION));
      assertEquals(Errno.EBUSY, busy.errno());
      assertEquals(before, td.module.septEntries());
      assertFalse(td.vm.isDead());
      assertEquals(1, td.vm.populate(Td.BASE, ByteBuffer.allocate((int) PAGE), 1, TdxAbi.MEASURE_MEMORY_REGION), "the caller retries");

      td.module.injectFailure(Seamcall.TDH_MR_EXTEND, TdxAbi.TDX_OPERAND_INVALID);
      GmemException bug = assertThrows(GmemException.class, () -> td.vm.populate(Td.BASE + PAGE, ByteBuffer.allocate((int) PAGE), 1, TdxAbi.MEASURE_MEMORY_REGION));
      assertEquals(Errno.EIO, bug.errno());
      assertTrue(td.vm.isDead(), "KVM_BUG_ON");
      assertEquals(Errno.EIO, assertThrows(GmemException.class, td.vm::finalizeLaunch).errno());
    }
  }
}
