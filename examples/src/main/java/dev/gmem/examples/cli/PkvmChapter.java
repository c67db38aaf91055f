package dev.gmem.examples.cli;

import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestCall;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Pin;
import dev.gmem.api.Shareability;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.arch.pkvm.MemoryCallService;
import dev.gmem.arch.pkvm.PkvmHypercalls;
import dev.gmem.arch.pkvm.PkvmHypervisor;
import java.io.PrintWriter;
import java.util.Optional;

/**
 * {@code gmem demo}, pKVM: the hypervisor, not the VMM, decides what the host may fault. The guest
 * shares a page (MEM_SHARE exits to the VMM, which converts it), the host writes it, the guest
 * unshares it while the host holds a pin: the page waits in NONE — nobody may fault it — until the
 * pin goes, then it is the guest's again with the host's bytes. The VMM's attempt to share a page
 * the guest never shared fails with EPERM.
 */
final class PkvmChapter {
  private static final long PAGE = 4096;
  private static final long GPA = 0x10_0000;

  private PkvmChapter() {}

  static void run(PrintWriter out, GmemRuntime rt) {
    out.printf("%npKVM protected VM (the pKVM hypervisor's rules by gmem-arch-pkvm, over a %s)%n",
        rt.backend().name().equals("kvm") ? "real DEFAULT KVM VM" : "memfd backend");
    Vm vm;
    try {
      vm = rt.createVm(VmType.PKVM);
    } catch (GmemException e) {
      out.printf("  no pKVM VM here: %s%n", e.getMessage());
      return;
    }
    try (GuestMemFile file = vm.createGuestMemFile(4 * PAGE, GmemFlags.MMAP); HostMapping map = file.map()) {
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 4 * PAGE, file, 0);
      SoftwareVcpu guest = vm.softwareVcpu();
      PkvmHypervisor hyp = vm.arch(PkvmHypervisor.class).orElseThrow();
      GmemPage page = new GmemPage(file.inode().ino(), 1);
      long gpa = GPA + PAGE;

      guest.writeLong(gpa, 0x5ec12e7L, true);
      out.printf("  guest wrote a secret into page 1 (donated at its first fault): %s%n", state(hyp, page));
      out.printf("  host read of page 1 -> %s%n", outcome(() -> map.getLong(PAGE)));
      out.printf("  VMM force-shares page 1 -> %s; shareability still %s%n",
          outcome(() -> file.setShareability(PAGE, PAGE, Shareability.SHARED)), file.shareability(PAGE));

      guest.writeLong(gpa, 0, true);
      GuestCall share = guest.hypercall(PkvmHypercalls.MEM_SHARE, gpa);
      VcpuExit.Hypercall exit = share.pendingExit();
      out.printf("  guest scrubbed it and issued MEM_SHARE: exit %s at IPA 0x%x to the VMM%n", PkvmHypercalls.isMemoryCall(exit) ? "MEM_SHARE" : exit,
          PkvmHypercalls.ipa(exit));
      out.printf("  VMM converted and completed; the guest reads x0 = %d; %s, %s%n", MemoryCallService.serve(vm, share),
          file.shareability(PAGE), state(hyp, page));
      map.putLong(PAGE, 0x4057L);
      out.printf("  host wrote 0x%x; the guest's shared read sees 0x%x%n", map.getLong(PAGE), guest.readLong(gpa, false));

      Pin pin = file.pin(PAGE, PAGE);
      long x0 = MemoryCallService.serve(vm, guest.hypercall(PkvmHypercalls.MEM_UNSHARE, gpa));
      out.printf("  host pinned page 1; guest issued MEM_UNSHARE (x0 = %d): %s, %s%n", x0, file.shareability(PAGE), state(hyp, page));
      out.printf("    host read -> %s, new pin -> %s, guest read -> %s%n", outcome(() -> map.getLong(PAGE)),
          outcome(() -> file.pin(PAGE, PAGE).close()), describe(guest.read(gpa, new byte[8], 0, 8, true)));
      pin.close();
      out.printf("  pin released: %s, %s; the guest's private read gets 0x%x; host read -> %s%n", file.shareability(PAGE), state(hyp, page),
          guest.readLong(gpa, true), outcome(() -> map.getLong(PAGE)));
      out.printf("  asked as if the VMM's bookkeeping said SHARED, may the host fault the guest's page 1? %s (the hypervisor decides)%n",
          hyp.hostMayFault(page, Shareability.SHARED) ? "yes" : "no");
    } finally {
      vm.close();
    }
  }

  private static String state(PkvmHypervisor hyp, GmemPage page) {
    Optional<dev.gmem.arch.pkvm.Ownership> o = hyp.ownership(page);
    return "host " + hyp.hostState(page) + " / guest " + hyp.guestState(page) + (o.isPresent() && o.get().unmapping() ? " (unshare waits for the host)" : "");
  }

  private static String describe(VcpuExit exit) {
    return exit == null ? "ok" : exit instanceof VcpuExit.MemoryFault ? "memory-fault exit" : exit.toString();
  }

  private static String outcome(Runnable call) {
    try {
      call.run();
      return "ok";
    } catch (GmemException e) {
      return e.errno().name();
    }
  }
}
