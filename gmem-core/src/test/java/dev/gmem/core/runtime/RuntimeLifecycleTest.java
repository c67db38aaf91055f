package dev.gmem.core.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import dev.gmem.core.conformance.OpenFds;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** Closing the runtime releases every fd and mapping it made, whatever the caller left open. */
class RuntimeLifecycleTest {

  static Stream<String> backends() {
    return Backends.names();
  }

  static long gmemMappings() throws IOException {
    // memfd mappings show as /memfd:gmem..., guest_memfd as anon_inode:[kvm-gmem], kvm_run as anon_inode:kvm-vcpu
    try (Stream<String> lines = Files.lines(Path.of("/proc/self/maps"))) {
      return lines.filter(l -> l.contains("gmem") || l.contains("kvm-vcpu")).count();
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void closingTheRuntimeReleasesEveryFdAndMapping(String backend) throws IOException {
    try (GmemRuntime warm = Backends.open(backend)) {
      warm.createVm(VmType.DEFAULT).createGuestMemFile(4096, 0).close();
    }
    java.util.Set<String> fds = OpenFds.now();
    long maps = gmemMappings();
    GmemRuntime rt = Backends.open(backend);
    Vm vm = rt.createVm(VmType.SW_PROTECTED);
    GuestMemFile f = vm.createGuestMemFile(64 * 4096, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
    f.map().putLong(0, 1);
    f.map(8192, 8192, 3, 1).putLong(0, 2);
    f.setShareability(4096, 4096, Shareability.PRIVATE);
    vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, 64 * 4096, f, 0);
    vm.softwareVcpu().readLong(0, false);
    f.pin(0, 4096);
    if (backend.equals("kvm")) {
      vm.createVcpu(0);
    }
    vm.createGuestMemFile(4096, GmemFlags.MMAP).map();
    rt.close();
    assertEquals(java.util.Set.of(), OpenFds.openedSince(fds), "fds left open");
    assertEquals(maps, gmemMappings(), "mappings left behind");
    assertEquals(Errno.EBADF, assertThrows(GmemException.class, () -> rt.createVm(VmType.DEFAULT)).errno());
    rt.close(); // idempotent
  }
}
