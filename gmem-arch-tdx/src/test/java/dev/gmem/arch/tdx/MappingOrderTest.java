package dev.gmem.arch.tdx;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.gmem.api.Folio;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.GmemPage;
import org.junit.jupiter.api.Test;

/**
 * {@code tdx_gmem_max_mapping_level}: no limit for shared, 4 KiB for private; 2 MiB only behind
 * {@link TdxModule#enableHugePages} with the huge-page RFC v5's conditions. Asked of the live TD's
 * hooks (core caps the answer further by folio order and memslot alignment).
 */
class MappingOrderTest {
  private static final long PAGE = Td.PAGE;
  private static final long HUGE_GFN = 0x200000 >>> 12; // 2 MiB aligned, not where anything was built

  @Test
  void sharedIsUnlimitedPrivateIs4kUnlessHugePagesAreEnabledAndAllowed() {
    try (Td td = new Td(4 * PAGE)) {
      ArchHooks arch = td.hooks();
      GmemPage p = new GmemPage(td.file.inode().ino(), 0);
      assertEquals(Folio.PUD_ORDER, arch.maxMappingOrder(p, HUGE_GFN, false));
      assertEquals(0, arch.maxMappingOrder(p, HUGE_GFN, true));
      td.module.enableHugePages(true);
      assertEquals(0, arch.maxMappingOrder(p, HUGE_GFN, true), "build time stays 4 KiB");
      td.populate(Td.BASE, new byte[(int) PAGE], 0);
      td.vm.finalizeLaunch();
      assertEquals(Folio.PMD_ORDER, arch.maxMappingOrder(p, HUGE_GFN, true), "RUNNABLE with the option");
      assertEquals(0, arch.maxMappingOrder(p, Td.BASE >>> 12, true), "a 2 MiB range added at 4 KiB during build stays 4 KiB");
      assertEquals(Folio.PUD_ORDER, arch.maxMappingOrder(p, Td.BASE >>> 12, false));
      assertEquals(TdxAbi.TDX_SUCCESS, td.vm.softwareVcpu().hypercall(TdxAbi.TDG_MEM_PAGE_ACCEPT, (HUGE_GFN << 12) + PAGE).result().value());
      assertEquals(0, arch.maxMappingOrder(p, HUGE_GFN, true), "the guest accepted at 4 KiB in the range");
      assertEquals(Folio.PMD_ORDER, arch.maxMappingOrder(p, HUGE_GFN + 512, true), "the next 2 MiB range is unaffected");
    }
  }

  @Test
  void withoutEnhancedDemoteInterruptibilityHugePagesStayOff() {
    try (Td td = new Td(PAGE)) {
      td.module.enableHugePages(false);
      td.vm.finalizeLaunch();
      assertEquals(0, td.hooks().maxMappingOrder(new GmemPage(td.file.inode().ino(), 0), HUGE_GFN, true));
    }
  }
}
