package dev.gmem.examples.bench;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;

/**
 * The gmem side of a pair: a runtime forced onto one backend, a DEFAULT VM and one
 * {@code MMAP|INIT_SHARED} guest_memfd file — the same flags the raw side passes to
 * {@code KVM_CREATE_GUEST_MEMFD} (other VM types and creation flags where a family needs them).
 * The userfault feature is off: its interceptor sees every access (no lock-free path), which is
 * its own cost, measured by its own family, not these.
 */
final class GmemFixture implements AutoCloseable {
  final GmemRuntime runtime;
  final Vm vm;
  final GuestMemFile file;

  private GmemFixture(GmemRuntime runtime, Vm vm, GuestMemFile file) {
    this.runtime = runtime;
    this.vm = vm;
    this.file = file;
  }

  static GmemFixture open(String backend, long size) {
    return open(backend, size, VmType.DEFAULT);
  }

  static GmemFixture open(String backend, long size, VmType type) {
    return open(backend, size, type, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
  }

  static GmemFixture open(String backend, long size, VmType type, long flags) {
    GmemRuntime rt = GmemRuntime.builder().property("gmem.backend", backend).build();
    try {
      if (!rt.backend().name().equals(backend)) {
        throw new IllegalStateException("gmem chose backend " + rt.backend().name() + " (" + rt.backend().reason() + "), not " + backend);
      }
      Vm vm = rt.createVm(type);
      try {
        return new GmemFixture(rt, vm, vm.createGuestMemFile(size, flags));
      } catch (RuntimeException e) {
        vm.close();
        throw e;
      }
    } catch (RuntimeException e) {
      rt.close();
      throw e;
    }
  }

  @Override
  public void close() {
    file.close();
    vm.close();
    runtime.close();
  }
}
