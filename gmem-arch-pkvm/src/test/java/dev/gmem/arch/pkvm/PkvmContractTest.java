package dev.gmem.arch.pkvm;

import dev.gmem.api.GmemException;
import dev.gmem.api.GuestCall;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Shareability;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.tck.ArchContractTests;
import java.util.ArrayList;
import java.util.List;

/**
 * The pKVM arch through the contract kit (gmem-tck), on the real kernel. Conversions are made the
 * guest's way — MEM_SHARE / MEM_UNSHARE per page through the software vCPU, the exits served by
 * one {@code setShareability} of the VMM's — since the hypervisor refuses the VMM's own (EPERM). A
 * failure of the VMM's conversion (a veto the kit injects) is answered to the guest and rethrown.
 */
class PkvmContractTest extends ArchContractTests {
  @Override
  protected ArchProvider provider() {
    return new PkvmArchProvider();
  }

  @Override
  protected VmType vmType() {
    return VmType.PKVM;
  }

  @Override
  protected void makeShared(Vm vm, GuestMemFile file, long offset, long length) {
    List<GuestCall> calls = new ArrayList<>();
    for (long off = offset; off < offset + length; off += PAGE) {
      if (file.shareability(off) != Shareability.SHARED) {
        calls.add(guestCall(vm, file, off, PkvmHypercalls.MEM_SHARE));
      }
    }
    serve(file, offset, length, Shareability.SHARED, calls);
  }

  @Override
  protected void makePrivate(Vm vm, GuestMemFile file, long offset, long length) {
    PkvmHypervisor hyp = arch(vm, PkvmHypervisor.class).orElseThrow();
    List<GuestCall> calls = new ArrayList<>();
    for (long off = offset; off < offset + length; off += PAGE) {
      // A page the host owns (the guest never had it) needs no call: the host may give it away.
      if (file.shareability(off) == Shareability.SHARED && hyp.ownership(new GmemPage(file.inode().ino(), off / PAGE)).isPresent()) {
        calls.add(guestCall(vm, file, off, PkvmHypercalls.MEM_UNSHARE));
      }
    }
    serve(file, offset, length, Shareability.PRIVATE, calls);
  }

  /** The guest's call on the page at file offset {@code off}, which the hypervisor must accept (an exit). */
  private static GuestCall guestCall(Vm vm, GuestMemFile file, long off, long nr) {
    GuestCall call = vm.softwareVcpu().hypercall(nr, gpa(vm, file, off));
    if (call.pendingExit() == null) {
      throw new IllegalStateException("the hypervisor refused the guest's call on file offset 0x" + Long.toHexString(off) + ": " + call.result());
    }
    return call;
  }

  /**
   * The VMM serves the pending calls (one per page, as from several vCPUs) with one conversion of
   * the range; a refused conversion is answered to every call and rethrown.
   */
  private static void serve(GuestMemFile file, long offset, long length, Shareability target, List<GuestCall> calls) {
    try {
      file.setShareability(offset, length, target);
    } catch (GmemException e) {
      calls.forEach(c -> c.complete(1));
      throw e;
    }
    for (GuestCall c : calls) {
      c.complete(0);
      if (c.result().value() != PkvmHypercalls.SUCCESS) {
        throw new IllegalStateException("the guest's call returned " + c.result() + " after the VMM converted");
      }
    }
  }

  private static long gpa(Vm vm, GuestMemFile file, long offset) {
    return vm.memslots().stream()
        .filter(m -> m.file() == file && offset >= m.offset() && offset - m.offset() < m.size())
        .mapToLong(m -> m.gpa() + offset - m.offset()).findFirst()
        .orElseThrow(() -> new IllegalStateException("no memslot binds file offset 0x" + Long.toHexString(offset)));
  }
}
