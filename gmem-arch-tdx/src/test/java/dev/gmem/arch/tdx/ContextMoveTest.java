package dev.gmem.arch.tdx;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Intra-host migration of a TD: the TDX module's state for it moves with the context; a TD still being built cannot be moved. */
class ContextMoveTest {
  private static final long PAGE = Td.PAGE;

  @Test
  void aRunnableTdMovesWithItsSeptAndMrtd() {
    try (Td td = new Td(4 * PAGE)) {
      byte[] img = new byte[(int) PAGE];
      new Random(9).nextBytes(img);
      td.populate(Td.BASE, img, TdxAbi.MEASURE_MEMORY_REGION);
      Vm b = td.rt.createVm(VmType.TDX);
      GuestMemFile fb = b.linkGuestMemFile(td.file, 0);
      b.setMemoryRegion(0, Memslot.GUEST_MEMFD, Td.BASE, 4 * PAGE, fb, 0);
      assertEquals(Errno.EINVAL, assertThrows(GmemException.class, () -> b.moveEncryptionContextFrom(td.vm)).errno(), "the source is still being built");
      td.vm.finalizeLaunch();
      byte[] mrtd = td.module.mrtd();
      b.moveEncryptionContextFrom(td.vm);
      TdxModule mb = b.arch(TdxModule.class).orElseThrow();
      assertEquals(TdState.RUNNABLE, mb.state());
      assertArrayEquals(mrtd, mb.mrtd());
      assertEquals(SeptState.MAPPED, mb.sept(Td.BASE).orElseThrow().state());
      assertTrue(td.module.septEntries().isEmpty(), "the source's module state went with the context");
      byte[] seen = new byte[(int) PAGE];
      assertNull(b.softwareVcpu().read(Td.BASE, seen, 0, seen.length, true));
      assertArrayEquals(img, seen);
      assertTrue(td.vm.isDead());
      b.close();
    }
  }
}
