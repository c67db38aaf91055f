package dev.gmem.arch.tdx;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Shareability;
import dev.gmem.api.spi.GmemPage;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Removal of private pages (conversion to shared, punch): BLOCK → TRACK → REMOVE → WBINVD, then
 * the page is cleared; OPERAND_BUSY retried once; any other failure, injected at each step, is
 * {@code KVM_BUG_ON}: the VM dies, the page leaks and is never handed out again.
 */
class RemovalTest {
  private static final long PAGE = Td.PAGE;
  private static final List<Seamcall> REMOVAL = List.of(
      Seamcall.TDH_MEM_RANGE_BLOCK, Seamcall.TDH_MEM_TRACK, Seamcall.TDH_MEM_PAGE_REMOVE, Seamcall.TDH_PHYMEM_PAGE_WBINVD);

  /** A finalized TD whose first page was populated with random bytes and whose second is AUGed and accepted. */
  private static Td built(String backend) {
    Td td = new Td(backend, 4 * PAGE);
    byte[] img = new byte[(int) PAGE];
    new Random(5).nextBytes(img);
    img[0] = 0x33;
    td.populate(Td.BASE, img, TdxAbi.MEASURE_MEMORY_REGION);
    td.vm.finalizeLaunch();
    td.vm.softwareVcpu().read(Td.BASE + PAGE, new byte[1], 0, 1, true);
    td.vm.softwareVcpu().hypercall(TdxAbi.TDG_MEM_PAGE_ACCEPT, Td.BASE + PAGE);
    td.vm.softwareVcpu().writeLong(Td.BASE + PAGE, -1L, true);
    return td;
  }

  private static List<Seamcall> callsSince(Td td, int from) {
    List<SeamcallRecord> all = td.module.seamcalls();
    return all.subList(from, all.size()).stream().map(SeamcallRecord::call).toList();
  }

  @ParameterizedTest
  @ValueSource(strings = {"kvm", "memfd"})
  void toSharedRemovesInOrderAndThePageReadsZero(String backend) {
    try (Td td = built(backend); HostMapping m = td.file.map()) {
      int mark = td.module.seamcalls().size();
      td.file.setShareability(0, 2 * PAGE, Shareability.SHARED);
      assertEquals(List.of(REMOVAL, REMOVAL).stream().flatMap(List::stream).toList(), callsSince(td, mark));
      assertTrue(td.module.septEntries().isEmpty(), "S-EPT and PAMT give both pages back");
      for (long off = 0; off < 2 * PAGE; off += 8) {
        assertEquals(0, m.getLong(off), "private contents never survive removal (offset " + off + ")");
      }
      assertFalse(td.vm.isDead());
      assertEquals(0, td.file.inode().leakedPages());
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"kvm", "memfd"})
  void punchRemovesInOrder(String backend) {
    try (Td td = built(backend)) {
      int mark = td.module.seamcalls().size();
      td.file.punchHole(PAGE, PAGE);
      assertEquals(REMOVAL, callsSince(td, mark));
      assertTrue(td.module.sept(Td.BASE + PAGE).isEmpty());
      assertTrue(td.module.sept(Td.BASE).isPresent(), "the other page stays");
    }
  }

  static List<Seamcall> retried() {
    return List.of(Seamcall.TDH_MEM_RANGE_BLOCK, Seamcall.TDH_MEM_TRACK, Seamcall.TDH_MEM_PAGE_REMOVE);
  }

  @ParameterizedTest
  @MethodSource("retried")
  void operandBusyIsRetriedOnce(Seamcall step) {
    try (Td td = built("kvm"); HostMapping m = td.file.map()) {
      td.module.injectFailure(step, TdxAbi.TDX_OPERAND_BUSY);
      td.file.setShareability(0, PAGE, Shareability.SHARED);
      List<SeamcallRecord> log = td.module.seamcalls();
      assertEquals(2, log.stream().filter(r -> r.call() == step).count(), "busy, then the one retry");
      assertFalse(td.vm.isDead());
      assertTrue(td.module.septEntries().stream().noneMatch(e -> e.gpa() == Td.BASE));
      assertEquals(0, m.getLong(0));
    }
  }

  static List<Object[]> failures() {
    return List.of(
        new Object[] {Seamcall.TDH_MEM_RANGE_BLOCK, TdxAbi.TDX_EPT_WALK_FAILED, 1},
        new Object[] {Seamcall.TDH_MEM_RANGE_BLOCK, TdxAbi.TDX_OPERAND_BUSY, 2},
        new Object[] {Seamcall.TDH_MEM_TRACK, TdxAbi.TDX_OPERAND_INVALID, 1},
        new Object[] {Seamcall.TDH_MEM_PAGE_REMOVE, TdxAbi.TDX_EPT_ENTRY_STATE_INCORRECT, 1},
        new Object[] {Seamcall.TDH_MEM_PAGE_REMOVE, TdxAbi.TDX_OPERAND_BUSY, 2},
        new Object[] {Seamcall.TDH_PHYMEM_PAGE_WBINVD, TdxAbi.TDX_OPERAND_BUSY, 1});
  }

  @ParameterizedTest
  @MethodSource("failures")
  void anyOtherFailureKillsTheVmAndLeaksThePageForGood(Seamcall step, long status, int times) {
    try (Td td = built("kvm"); HostMapping m = td.file.map()) {
      for (int i = 0; i < times; i++) {
        td.module.injectFailure(step, status);
      }
      GmemPage page = td.module.sept(Td.BASE).orElseThrow().page();
      td.file.setShareability(0, PAGE, Shareability.SHARED); // the conversion itself completes: the failure is after its point of no return
      assertTrue(td.vm.isDead(), "KVM_BUG_ON");
      assertEquals(List.of(page), td.module.leakedPages());
      assertEquals(1, td.file.inode().leakedPages());
      assertEquals(Errno.EHWPOISON, assertThrows(GmemException.class, () -> m.getLong(0)).errno(), "a leaked page is never handed out");
      assertEquals(Errno.EIO, assertThrows(GmemException.class, () -> td.vm.softwareVcpu().readLong(Td.BASE + PAGE, true)).errno(), "the VM is dead");
      // The file stays usable: punching the leaked page frees nothing and the next page still converts.
      td.file.punchHole(0, PAGE);
      assertEquals(1, td.file.inode().leakedPages());
      td.file.setShareability(PAGE, PAGE, Shareability.SHARED);
      assertEquals(0, m.getLong(PAGE));
    }
  }
}
