package dev.gmem.core.runtime;

import static dev.gmem.core.runtime.RuntimeLifecycleTest.gmemMappings;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.GuestMemInode;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Pin;
import dev.gmem.api.Shareability;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * What keeps what alive (issue 8 item 11): a mapping and a pin each hold their inode, whatever
 * happened to the file; closing the runtime releases everything reachable from it — VMs, files,
 * mappings, pins, memslots — including objects whose file or VM was closed first.
 */
class ReferenceLifetimeTest {
  private static final long PAGE = 4096;

  static Stream<String> backends() {
    return Backends.names();
  }

  /**
   * Open fds that gmem or KVM own (memfds, guest_memfds, VM and vCPU fds, /dev/kvm): unlike a
   * count of every fd, not moved by the JVM, the class loader or the test framework meanwhile.
   */
  static long openFds() throws IOException {
    try (Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
      return s.filter(fd -> {
        try {
          String target = Files.readSymbolicLink(fd).toString();
          return target.contains("gmem") || target.contains("kvm") || target.contains("memfd");
        } catch (IOException e) {
          return false; // closed since the listing
        }
      }).count();
    }
  }

  private static void warmUp(String backend) {
    try (GmemRuntime warm = Backends.open(backend)) {
      warm.createVm(VmType.DEFAULT).createGuestMemFile(PAGE, GmemFlags.MMAP).map().close();
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void closingTheRuntimeUnmapsMappingsOfClosedFiles(String backend) throws IOException {
    warmUp(backend);
    long fds = openFds();
    long maps = gmemMappings();
    for (int i = 0; i < 3; i++) {
      GmemRuntime rt = Backends.open(backend);
      GuestMemFile f = rt.createVm(VmType.DEFAULT).createGuestMemFile(16 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      HostMapping m = f.map();
      m.putLong(0, 42);
      f.close();
      assertEquals(42, m.getLong(0), "the mapping keeps the memory after the file is closed");
      rt.close();
      assertFalse(m.isOpen(), "closing the runtime closes the mapping");
      assertEquals(Errno.EFAULT, assertThrows(GmemException.class, () -> m.getLong(0)).errno());
    }
    assertEquals(fds, openFds(), "fds left open");
    assertEquals(maps, gmemMappings(), "mappings left behind");
  }

  @ParameterizedTest
  @MethodSource("backends")
  void closingTheRuntimeReleasesWhatClosedVmsAndFilesLeft(String backend) throws IOException {
    warmUp(backend);
    long fds = openFds();
    long maps = gmemMappings();
    GmemRuntime rt = Backends.open(backend);
    // A VM closed with its files closed, whose mapping and pin live on.
    Vm closedVm = rt.createVm(VmType.SW_PROTECTED);
    GuestMemFile a = closedVm.createGuestMemFile(16 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
    HostMapping ma = a.map();
    ma.putLong(0, 1);
    Pin pa = a.pin(PAGE, PAGE);
    a.close();
    closedVm.close();
    // An open VM with a memslot over a closed file, a pin of it, a converted page.
    Vm vm = rt.createVm(VmType.SW_PROTECTED);
    GuestMemFile b = vm.createGuestMemFile(16 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
    vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, 16 * PAGE, b, 0);
    vm.softwareVcpu().writeLong(0, 5, false);
    b.setShareability(2 * PAGE, PAGE, Shareability.PRIVATE);
    Pin pb = b.pin(0, PAGE);
    b.close();
    rt.close();
    assertFalse(ma.isOpen());
    assertFalse(pa.isHeld(), "the runtime dropped the pin's references");
    assertFalse(pb.isHeld());
    pa.close(); // idempotent after the runtime released it
    pb.close();
    assertTrue(vm.memslots().isEmpty(), "memslots deleted with their VM");
    assertEquals(fds, openFds(), "fds left open");
    assertEquals(maps, gmemMappings(), "mappings left behind");
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aPinKeepsItsInodeAlive(String backend) throws IOException {
    warmUp(backend);
    long fds = openFds();
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      long vmFds = openFds();
      GuestMemFile f = vm.createGuestMemFile(16 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      GuestMemInode inode = f.inode();
      Pin p = f.pin(0, PAGE);
      f.close();
      assertEquals(1, inode.allocatedPages(), "the pinned page stays while the pin holds the inode");
      assertTrue(p.isHeld());
      p.close(); // the last reference: the inode goes now
      assertFalse(p.isHeld());
      assertEquals(0, inode.allocatedPages());
      assertEquals(vmFds, openFds(), "the inode's memory fd is closed with its last reference");
    }
    assertEquals(fds, openFds());
  }
}
