package dev.gmem.userfault.snapshot;

import dev.gmem.api.Api;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.ShareabilityRange;
import dev.gmem.api.Vcpu;
import dev.gmem.api.Vm;
import dev.gmem.userfault.Userfault;
import dev.gmem.userfault.source.PageServer;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * Restores a {@link Snapshot} lazily: the VM, its files (flags, size, shareability) and memslots
 * (each with USERFAULT and every bit set) and a vCPU with the saved registers exist at once; pages
 * come on demand from the snapshot while a background fill brings the rest, the last restore's
 * working set first when {@code prefetch}. Run the vCPU through {@link #run()}.
 *
 * <p>KVM Userfault traps vCPU accesses only; KVM's own accesses — the guest page-table walk of a
 * shadow-paging host like this project's, the GDT — go through {@code userspace_addr} and are
 * userfaultfd's business upstream. gmem's stand-in for stage 2 cannot hold those, so a memslot
 * holding a page the saved vCPU state points KVM at ({@link KernelWalkedPages}) is copied in
 * whole before the vCPU exists and is not put under USERFAULT; the others are lazy.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public final class LazyRestore implements AutoCloseable {
  private final Snapshot snapshot;
  private final Vm vm;
  private final Vcpu vcpu;
  private final PageServer server;
  private final List<GuestMemFile> files;

  private LazyRestore(Snapshot snapshot, Vm vm, Vcpu vcpu, PageServer server, List<GuestMemFile> files) {
    this.snapshot = snapshot;
    this.vm = vm;
    this.vcpu = vcpu;
    this.server = server;
    this.files = files;
  }

  /** Starts the restore of {@code snapshot} in {@code rt}; the vCPU may run as soon as this returns. */
  public static LazyRestore start(GmemRuntime rt, Snapshot snapshot, boolean prefetch, boolean background) throws IOException {
    Userfault uf = rt.feature(Userfault.class).orElseThrow(() -> new IllegalStateException("the userfault feature is off"));
    Vm vm = rt.createVm(snapshot.type());
    PageServer server = null;
    SnapshotPageSource source = null;
    List<GuestMemFile> files = new ArrayList<>();
    try {
      for (Snapshot.FileMeta f : snapshot.files()) {
        GuestMemFile file = vm.createGuestMemFile(f.size(), f.flags());
        for (ShareabilityRange r : f.shareability()) {
          if (!java.util.Optional.of(r.shareability()).equals(file.shareability(r.start() * Snapshot.PAGE, (r.end() - r.start()) * Snapshot.PAGE))) {
            file.setShareability(r.start() * Snapshot.PAGE, (r.end() - r.start()) * Snapshot.PAGE, r.shareability());
          }
        }
        files.add(file);
      }
      Set<Long> walked = KernelWalkedPages.of(snapshot);
      List<Memslot> lazy = new ArrayList<>();
      for (Snapshot.SlotMeta s : snapshot.slots()) {
        boolean eager = walked.stream().anyMatch(gfn -> Long.compareUnsigned(gfn * Snapshot.PAGE - s.gpa(), s.size()) < 0);
        int flags = eager ? s.flags() & ~Userfault.MEM_USERFAULT : s.flags() | Userfault.MEM_USERFAULT;
        Memslot m = vm.setMemoryRegion(s.slot(), flags, s.gpa(), s.size(), files.get(s.file()), s.offset());
        if (eager) {
          snapshot.copyInto(vm, s, files.get(s.file()));
        } else {
          lazy.add(m);
        }
      }
      List<Long> ws = prefetch ? snapshot.workingSet() : List.of();
      source = new SnapshotPageSource(snapshot);
      source.background(background);
      server = PageServer.start(uf, vm, source, lazy, ws); // hinted before the source starts
      Vcpu vcpu = vm.createVcpu(0);
      vcpu.setSpecialRegisters(snapshot.specialRegisters());
      vcpu.setRegisters(snapshot.registers());
      return new LazyRestore(snapshot, vm, vcpu, server, files);
    } catch (IOException | RuntimeException e) {
      // A snapshot this runtime cannot honour (flags it lacks, a corrupt page of an eager slot)
      // leaves nothing behind: no VM, no page source thread.
      if (server != null) {
        server.close();
      } else if (source != null) {
        source.close();
      }
      vm.close();
      files.forEach(GuestMemFile::close);
      throw e;
    }
  }

  public Vm vm() {
    return vm;
  }

  public Vcpu vcpu() {
    return vcpu;
  }

  public PageServer server() {
    return server;
  }

  /** Runs the vCPU to its next exit that is not a USERFAULT fault (those wait for their page). */
  public dev.gmem.api.VcpuExit run() {
    return server.run(vcpu);
  }

  /** Records this restore's demand order as the snapshot's working set, for the next restore's prefetch. */
  public void recordWorkingSet() throws IOException {
    snapshot.recordWorkingSet(server.demandOrder());
  }

  /** Closes the vCPU, the page server and the VM. */
  @Override
  public void close() {
    vcpu.close();
    server.close();
    vm.close();
  }

  /** The slots restored (their flags now include USERFAULT). */
  public List<Memslot> memslots() {
    return vm.memslots();
  }
}
