package dev.gmem.arch.tdx;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.ArchHooks;
import java.nio.ByteBuffer;

/**
 * A TD on the real runtime: a TDX VM (over a real DEFAULT KVM VM on the kvm backend), one
 * private guest_memfd file bound at {@link #BASE}. Closes everything it opened.
 */
final class Td implements AutoCloseable {
  static final long PAGE = 4096;
  /** Where the file is bound (a TD's image usually sits below 4 GiB; any private GPA works). */
  static final long BASE = 0x100000;

  final GmemRuntime rt;
  final Vm vm;
  final GuestMemFile file;
  final TdxModule module;

  Td(String backend, long size) {
    rt = GmemRuntime.builder().property("gmem.backend", backend).build();
    try {
      vm = rt.createVm(VmType.TDX);
      file = vm.createGuestMemFile(size, GmemFlags.MMAP);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, BASE, size, file, 0);
      module = vm.arch(TdxModule.class).orElseThrow();
    } catch (RuntimeException e) {
      rt.close();
      throw e;
    }
  }

  Td(long size) {
    this("kvm", size);
  }

  ArchHooks hooks() {
    return vm.arch(ArchHooks.class).orElseThrow();
  }

  /** Populates {@code image} (whole pages) at {@code gpa}, resuming until every page is in. */
  void populate(long gpa, byte[] image, long flags) {
    ByteBuffer src = ByteBuffer.wrap(image);
    long pages = image.length / PAGE;
    long done = 0;
    while (done < pages) {
      done += vm.populate(gpa + done * PAGE, src, pages - done, flags);
    }
  }

  @Override
  public void close() {
    rt.close();
  }
}
