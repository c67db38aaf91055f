package dev.gmem.core.conformance;

import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;

/** A SW_PROTECTED guest on one backend: a file bound at GPA 0 and a host mapping of all of it. */
public final class Guests {
  private Guests() {}

  /** What a test does with the guest. */
  @FunctionalInterface
  public interface GuestTest {
    void run(Vm vm, GuestMemFile file, HostMapping mapping);
  }

  /** Runs {@code test} on a fresh runtime of {@code backend} with a file of {@code size} bytes created with {@code flags}. */
  public static void withGuest(String backend, long size, long flags, GuestTest test) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      try (GuestMemFile f = vm.createGuestMemFile(size, flags); HostMapping m = f.map()) {
        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, size, f, 0);
        test.run(vm, f, m);
      }
    }
  }
}
