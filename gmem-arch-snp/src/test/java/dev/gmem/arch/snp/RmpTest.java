package dev.gmem.arch.snp;

import static dev.gmem.arch.snp.SnpVms.BLOCKS;
import static dev.gmem.arch.snp.SnpVms.HUGE;
import static dev.gmem.arch.snp.SnpVms.PAGE;
import static dev.gmem.arch.snp.SnpVms.page;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Fallocate;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The RMP as {@code sev_gmem_prepare}, {@code sev_gmem_invalidate} and
 * {@code sev_gmem_max_mapping_level} keep it: 2 MiB entries for whole private 2 MiB folios at
 * aligned GPAs, 4 KiB otherwise, PSMASH (counted) before a 4 KiB change inside a 2 MiB entry, and
 * the mapping order the guest gets from the entry size.
 */
class RmpTest {
  static final long GPA = 0x4000_0000L;

  static java.util.stream.Stream<String> backends() {
    return SnpVms.backends();
  }

  @ParameterizedTest
  @MethodSource("backends")
  void a2MiBFolioAtAnAlignedGpaGetsOne2MiBEntryAndPsmashOnAPartialShare(String backend) {
    try (GmemRuntime rt = SnpVms.hugeRuntime(backend)) {
      Vm vm = rt.createVm(VmType.SNP);
      SnpArch snp = SnpVms.arch(vm);
      GuestMemFile f = vm.createGuestMemFile(2 * HUGE, GmemFlags.MMAP | BLOCKS);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 2 * HUGE, f, 0);
      long updates = snp.rmpUpdateCount();

      SnpGuest.pvalidate(vm.softwareVcpu(), GPA + 5 * PAGE, false, true); // faults the folio in: prepare
      RmpEntry e = snp.rmpEntry(page(f, 5));
      assertTrue(e.assigned() && e.is2M() && !e.immutable());
      assertEquals(snp.asid(), e.asid());
      assertEquals(GPA + 5 * PAGE, e.gpa());
      assertEquals(updates + 1, snp.rmpUpdateCount(), "one RMPUPDATE for the 2 MiB entry");
      assertEquals(SnpArch.PVALIDATE_FAIL_SIZEMISMATCH, SnpGuest.pvalidate(vm.softwareVcpu(), GPA, false, true), "4 KiB PVALIDATE of a 2 MiB entry");
      assertEquals(SnpArch.PVALIDATE_SUCCESS, SnpGuest.pvalidate(vm.softwareVcpu(), GPA, true, true));
      assertTrue(snp.rmpEntry(page(f, 511)).validated(), "validated as a whole");
      assertEquals(9, vm.softwareVcpu().mappingOrder(GPA + 7 * PAGE, true), "max mapping order = the RMP entry size");
      assertEquals(0, snp.psmashCount());

      f.setShareability(3 * PAGE, PAGE, Shareability.SHARED); // a 4 KiB change inside the 2 MiB entry
      assertEquals(1, snp.psmashCount(), "smashed first");
      assertFalse(snp.rmpEntry(page(f, 3)).assigned(), "the shared page is the hypervisor's");
      RmpEntry neighbour = snp.rmpEntry(page(f, 4));
      assertTrue(neighbour.assigned() && !neighbour.is2M() && neighbour.validated(), "the rest stays assigned and validated, at 4 KiB");
      assertEquals(0, vm.softwareVcpu().mappingOrder(GPA + 7 * PAGE, true));

      f.fallocate(Fallocate.PUNCH_HOLE | Fallocate.KEEP_SIZE, 0, 16 * PAGE);
      assertTrue(snp.rmpEntry(page(f, 4)).assigned(), "a partly punched huge page is only zeroed: nothing leaves");
      f.fallocate(Fallocate.PUNCH_HOLE | Fallocate.KEEP_SIZE, 0, HUGE);
      assertEquals(1, snp.psmashCount(), "4 KiB entries need no PSMASH");
      assertEquals(0, snp.assignedPages(), "all back to the hypervisor");
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aWhole2MiBEntryGoesBackWithoutPsmashAnd4KiBWhereTheBlockIsNotAllShared(String backend) {
    try (GmemRuntime rt = SnpVms.hugeRuntime(backend)) {
      Vm vm = rt.createVm(VmType.SNP);
      SnpArch snp = SnpVms.arch(vm);
      GuestMemFile f = vm.createGuestMemFile(2 * HUGE, GmemFlags.MMAP | BLOCKS);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 2 * HUGE, f, 0);
      SnpGuest.pvalidate(vm.softwareVcpu(), GPA + HUGE, true, true);
      assertTrue(snp.rmpEntry(page(f, 512)).is2M());
      f.setShareability(HUGE, HUGE, Shareability.SHARED);
      assertEquals(0, snp.psmashCount(), "the whole entry goes with one RMPUPDATE");
      assertEquals(0, snp.assignedPages());

      f.setShareability(HUGE, HUGE, Shareability.PRIVATE);
      assertEquals(SnpArch.PVALIDATE_SUCCESS, SnpGuest.pvalidate(vm.softwareVcpu(), GPA + HUGE, true, true));
      assertTrue(snp.rmpEntry(page(f, 512)).is2M(), "converted back: 2 MiB again");
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void unaligned2MiBFoliosAnd4KiBFoliosGet4KiBEntriesAndPrepareOfAnAssignedPageIsANoOp(String backend) {
    try (GmemRuntime rt = SnpVms.hugeRuntime(backend)) {
      Vm vm = rt.createVm(VmType.SNP);
      SnpArch snp = SnpVms.arch(vm);
      GuestMemFile huge = vm.createGuestMemFile(HUGE, GmemFlags.MMAP | BLOCKS);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA + PAGE, HUGE, huge, 0); // GPA not 2 MiB aligned
      GuestMemFile small = vm.createGuestMemFile(4 * PAGE, GmemFlags.MMAP);
      vm.setMemoryRegion(1, Memslot.GUEST_MEMFD, 0x10_0000, 4 * PAGE, small, 0);

      SnpGuest.pvalidate(vm.softwareVcpu(), GPA + PAGE, false, true);
      assertEquals(512, snp.assignedPages());
      assertFalse(snp.rmpEntry(page(huge, 0)).is2M(), "misaligned GPA: 4 KiB entries");
      assertEquals(0, vm.softwareVcpu().mappingOrder(GPA + PAGE, true));

      SnpGuest.pvalidate(vm.softwareVcpu(), 0x10_0000, false, true);
      RmpEntry e = snp.rmpEntry(page(small, 0));
      assertTrue(e.assigned() && !e.is2M());
      long updates = snp.rmpUpdateCount();
      snp.prepare(page(small, 0), 0x100, 0); // the fault path never does this twice; the hook still must be idempotent
      assertEquals(updates, snp.rmpUpdateCount(), "already assigned: no RMPUPDATE");
      assertEquals(e, snp.rmpEntry(page(small, 0)));
    }
  }
}
