package dev.gmem.arch.pkvm;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.GmemPage;

/** A protected VM on a real runtime: one file bound at {@link #GPA}, its host mapping, its hypervisor. */
final class PkvmGuest implements AutoCloseable {
  static final long PAGE = 4096;
  static final long GPA = 0x10_0000;

  final Vm vm;
  final GuestMemFile file;
  final HostMapping map;
  final SoftwareVcpu cpu;
  final PkvmHypervisor hyp;

  PkvmGuest(GmemRuntime rt, int pages) {
    vm = rt.createVm(VmType.PKVM);
    file = vm.createGuestMemFile(pages * PAGE, GmemFlags.MMAP);
    vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, pages * PAGE, file, 0);
    map = file.map();
    cpu = vm.softwareVcpu();
    hyp = vm.arch(PkvmHypervisor.class).orElseThrow();
  }

  GmemPage page(long index) {
    return new GmemPage(file.inode().ino(), index);
  }

  long gpa(long index) {
    return GPA + index * PAGE;
  }

  /** The guest issues {@code nr} on page {@code index} and the VMM serves it: what the guest reads. */
  long call(long nr, long index) {
    return MemoryCallService.serve(vm, cpu.hypercall(nr, gpa(index)));
  }

  @Override
  public void close() {
    map.close();
    vm.close();
    file.close();
  }
}
