package dev.gmem.directmap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.api.spi.TemporaryMapping;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * What can reach a NO_DIRECT_MAP page, on the real kernel: gmem's direct map loses it at filemap
 * add and gets it back at removal, a temporary mapping reaches it in its scope only, the kernel's
 * GUP paths fail on the secret memory (and work on ordinary memory, so the probe can fail), and a
 * pin fails like GUP.
 */
class DirectMapSecurityTest {
  private static final long PAGE = 4096;
  private static final long SIZE = 16 * PAGE;
  private static final int EFAULT = Errno.EFAULT.code();

  private static GuestMemFile noDirectMap(Vm vm) {
    return vm.createGuestMemFile(SIZE, GmemFlags.MMAP | GmemFlags.INIT_SHARED | GmemFlags.NO_DIRECT_MAP | GmemFlags.WRITE);
  }

  private static ByteBuffer page(int value) {
    byte[] b = new byte[(int) PAGE];
    Arrays.fill(b, (byte) value);
    return ByteBuffer.wrap(b);
  }

  @ParameterizedTest
  @MethodSource("dev.gmem.directmap.Runtimes#backends")
  void anAddedFolioIsReadableThroughNoGmemViewButATemporaryMapping(String backend) {
    try (GmemRuntime rt = Runtimes.open(backend); GuestMemFile f = noDirectMap(rt.createVm(VmType.DEFAULT)); HostMapping m = f.map()) {
      DirectMapFeature dm = Runtimes.feature(rt);
      long ino = f.inode().ino();
      long linear = dm.linearAddress(ino);
      assertNotEquals(0, linear);
      assertFalse(dm.isRemoved(ino, 1));
      assertEquals(EFAULT, KernelPaths.copyFromUser(linear + PAGE, 8), "an index that never had a page has nothing in gmem's direct map");
      assertEquals(0, f.inode().allocatedPages(), "and probing it allocated no secret memory");

      assertEquals(PAGE, f.write(PAGE, page(0x5a)));
      assertTrue(dm.isRemoved(ino, 1));
      assertEquals(EFAULT, KernelPaths.copyFromUser(linear + PAGE, 8), "gmem's direct map lost the folio when it was added");
      assertEquals(0x5a, m.getByte(PAGE), "the VMM's own mapping keeps it, as upstream");
      try (TemporaryMapping t = dm.host.mapTemporarily(new GmemPage(ino, 1), 1)) {
        ByteBuffer b = ByteBuffer.allocate(16);
        t.read(8, b);
        assertEquals(0x5a5a5a5a5a5a5a5aL, b.getLong(0));
      }

      // A host fault adds a folio too: zapped before anyone used it.
      m.putLong(3 * PAGE, 7);
      assertTrue(dm.isRemoved(ino, 3));
      assertEquals(EFAULT, KernelPaths.copyFromUser(linear + 3 * PAGE, 8));

      f.punchHole(PAGE, PAGE);
      assertFalse(dm.isRemoved(ino, 1));
      assertEquals(0, KernelPaths.copyFromUser(linear + PAGE, 8), "restored when the folio left the filemap");
      // The held page enters the filemap again (the host faults it): now it was in gmem's direct
      // map, so it is zapped for real.
      long protects = dm.stats().viewProtects();
      assertEquals(0, m.getLong(PAGE), "a punched secret page reads zero");
      assertTrue(dm.isRemoved(ino, 1));
      assertEquals(EFAULT, KernelPaths.copyFromUser(linear + PAGE, 8), "a restored page leaves gmem's direct map again when it is re-added");
      assertEquals(protects + 1, dm.stats().viewProtects(), "one mprotect removed it");
      assertEquals(0, dm.host.temporaryMappingStats().open(), "core's own temporary mappings (write, punch) closed with their scope");
    }
  }

  @ParameterizedTest
  @MethodSource("dev.gmem.directmap.Runtimes#backends")
  void kernelGupFailsOnSecretPagesAndWorksOnOrdinaryOnes(String backend) {
    try (GmemRuntime rt = Runtimes.open(backend)) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      try (GuestMemFile secret = noDirectMap(vm); HostMapping s = secret.map();
          GuestMemFile plain = vm.createGuestMemFile(SIZE, GmemFlags.MMAP | GmemFlags.INIT_SHARED); HostMapping p = plain.map()) {
        s.putLong(0, 1);
        p.putLong(0, 1);
        assertEquals(EFAULT, KernelPaths.vmsplice(s.address(), PAGE));
        assertEquals(EFAULT, KernelPaths.processVmReadv(s.address(), 64));
        assertEquals(0, KernelPaths.copyFromUser(s.address(), 64), "copy_from_user goes through the page tables and works");
        assertEquals(0, KernelPaths.vmsplice(p.address(), PAGE));
        assertEquals(0, KernelPaths.processVmReadv(p.address(), 64));
      }
    }
  }

  @ParameterizedTest
  @MethodSource("dev.gmem.directmap.Runtimes#backends")
  void aPinFailsLikeGupAndChangesNothing(String backend) {
    try (GmemRuntime rt = Runtimes.open(backend)) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      DirectMapFeature dm = Runtimes.feature(rt);
      try (GuestMemFile f = noDirectMap(vm); GuestMemFile plain = vm.createGuestMemFile(SIZE, GmemFlags.MMAP | GmemFlags.INIT_SHARED)) {
        GmemException e = assertThrows(GmemException.class, () -> f.pin(0, 2 * PAGE));
        assertEquals(Errno.EFAULT, e.errno());
        assertEquals(0, f.inode().allocatedPages(), "nothing was faulted in");
        assertEquals(1, dm.stats().refusedPins());
        assertEquals(0, dm.stats().removedPages());
        plain.pin(0, PAGE).close(); // the same call works on ordinary memory
      }
    }
  }

  /** The feature refuses pins only: host accesses keep the lock-free path, on its inodes and everyone else's. */
  @ParameterizedTest
  @MethodSource("dev.gmem.directmap.Runtimes#backends")
  void accessesKeepTheLockFreePath(String backend) {
    try (GmemRuntime rt = Runtimes.open(backend)) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      try (GuestMemFile secret = noDirectMap(vm); HostMapping s = secret.map();
          GuestMemFile plain = vm.createGuestMemFile(SIZE, GmemFlags.MMAP | GmemFlags.INIT_SHARED); HostMapping p = plain.map()) {
        s.putLong(0, 1);
        p.putLong(0, 1);
        for (GuestMemFile f : new GuestMemFile[] {secret, plain}) {
          assertTrue(((dev.gmem.core.file.GuestMemFileImpl) f).inodeImpl().fastPages()
              .isMapped(0, dev.gmem.core.access.FastPageTable.Kind.HOST), f + " page 0 on the lock-free path");
        }
      }
    }
  }

  @ParameterizedTest
  @MethodSource("dev.gmem.directmap.Runtimes#backends")
  void noTemporaryMappingOutlivesItsScope(String backend) throws Exception {
    try (GmemRuntime rt = Runtimes.open(backend); GuestMemFile f = noDirectMap(rt.createVm(VmType.DEFAULT))) {
      DirectMapFeature dm = Runtimes.feature(rt);
      long ino = f.inode().ino();
      f.write(0, page(0x11));
      TemporaryMapping.Stats before = dm.host.temporaryMappingStats();
      TemporaryMapping kept;
      try (TemporaryMapping t = dm.host.mapTemporarily(new GmemPage(ino, 0), 1)) {
        kept = t;
        ByteBuffer one = ByteBuffer.allocate(1);
        t.read(0, one);
        assertEquals(0x11, one.get(0));
        assertEquals(before.open() + 1, dm.host.temporaryMappingStats().open());
        ExecutionException other = assertThrows(ExecutionException.class,
            () -> CompletableFuture.runAsync(() -> t.read(0, ByteBuffer.allocate(1))).get());
        assertTrue(other.getCause() instanceof IllegalStateException, "confined to its thread");
        assertThrows(IndexOutOfBoundsException.class, () -> t.read(PAGE - 1, ByteBuffer.allocate(2)));
      }
      assertFalse(kept.isOpen());
      assertThrows(IllegalStateException.class, () -> kept.read(0, ByteBuffer.allocate(1)));
      assertThrows(IllegalStateException.class, () -> kept.write(0, ByteBuffer.allocate(1)));
      TemporaryMapping.Stats after = dm.host.temporaryMappingStats();
      assertEquals(before.open(), after.open());
      assertEquals(before.opened() + 1, after.opened());
      assertTrue(after.bytesCopied() > before.bytesCopied());

      assertEquals(Errno.EINVAL, assertThrows(GmemException.class, () -> dm.host.mapTemporarily(new GmemPage(ino, 16), 1)).errno());
      assertEquals(Errno.EINVAL, assertThrows(GmemException.class, () -> dm.host.mapTemporarily(new GmemPage(ino + 1000, 0), 1)).errno());
      assertEquals(before.open(), dm.host.temporaryMappingStats().open());
    }
  }
}
