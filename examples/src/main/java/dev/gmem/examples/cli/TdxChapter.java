package dev.gmem.examples.cli;

import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestCall;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.PluginDescriptor;
import dev.gmem.api.Shareability;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.arch.tdx.Seamcall;
import dev.gmem.arch.tdx.TdxAbi;
import dev.gmem.arch.tdx.TdxModule;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Optional;

/**
 * {@code gmem demo}, a TD (gmem-arch-tdx, no TDX hardware: the TDX module is modelled, the memory
 * and the KVM VM under the TD are real). The VMM builds the TD from an image with populate and
 * measurement, twice, and prints MRTD; finalizes; the guest (driven through the software vCPU)
 * touches a page — #VE — and accepts it, then asks with MapGPA for a page to become shared; the
 * VMM completes the exits with {@code setShareability}; the host reads what the guest wrote
 * there. Finally a reclaim that the TDX module fails (injected) leaks the page and kills the VM,
 * which still closes cleanly.
 */
final class TdxChapter {
  private static final long PAGE = 4096;
  private static final long SIZE = 8L << 20;
  /** Where the "firmware" image goes: the top 16 KiB below 8 MiB, like a TDVF's BFV. */
  private static final long IMAGE = SIZE - 4 * PAGE;
  private static final long TOUCHED = 0x10000;
  private static final long SHARED = 0x20000;

  private final PrintWriter out;
  private final GmemRuntime rt;

  private TdxChapter(PrintWriter out, GmemRuntime rt) {
    this.out = out;
    this.rt = rt;
  }

  static void run(PrintWriter out, GmemRuntime rt) {
    Optional<PluginDescriptor> plugin = rt.plugins().plugins().stream().filter(d -> d.id().equals("tdx")).findFirst();
    if (plugin.isEmpty() || plugin.get().status() != PluginDescriptor.Status.ACTIVE) {
      out.printf("%nTDX: skipped (%s)%n", plugin.map(d -> "gmem-arch-tdx is " + d.status()).orElse("gmem-arch-tdx is not on the class path"));
      return;
    }
    new TdxChapter(out, rt).run();
  }

  /** A deterministic 16 KiB image: its MRTD is the same on every run and every host. */
  private static byte[] image() {
    byte[] img = new byte[(int) (4 * PAGE)];
    byte[] text = "gmem TD firmware volume".getBytes(StandardCharsets.US_ASCII);
    for (int i = 0; i < img.length; i++) {
      img[i] = (byte) (i * 31 + text[i % text.length]);
    }
    return img;
  }

  private void run() {
    out.printf("%nTD (VM type TDX, arch tdx: the TDX module is modelled — S-EPT, PAMT, MRTD as real SHA-384;"
        + " memory, conversion and punch are real; nothing is encrypted)%n");
    byte[] first = build(false);
    byte[] second = build(true);
    out.printf("TD: MRTD equal across two runs: %s%n", Arrays.equals(first, second) ? "yes" : "NO");
  }

  /** One TD from the image; the second one goes on to run the guest. */
  private byte[] build(boolean andRun) {
    Vm vm = rt.createVm(VmType.TDX);
    try (GuestMemFile file = vm.createGuestMemFile(SIZE, GmemFlags.MMAP)) {
      TdxModule tdx = vm.arch(TdxModule.class).orElseThrow();
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, SIZE, file, 0);
      ByteBuffer src = ByteBuffer.wrap(image());
      long pages = vm.populate(IMAGE, src, 4, TdxAbi.MEASURE_MEMORY_REGION);
      vm.finalizeLaunch();
      byte[] mrtd = tdx.mrtd();
      out.printf("TD: KVM_TDX_INIT_MEM_REGION of %d pages at 0x%x (%d x TDH.MEM.PAGE.ADD, %d x TDH.MR.EXTEND), KVM_TDX_FINALIZE_VM: %s%n",
          pages, IMAGE, count(tdx, Seamcall.TDH_MEM_PAGE_ADD), count(tdx, Seamcall.TDH_MR_EXTEND), tdx.state());
      out.printf("TD: MRTD %s%n", HexFormat.of().formatHex(mrtd));
      if (andRun) {
        guest(vm, file, tdx);
      }
      return mrtd;
    } finally {
      vm.close();
    }
  }

  private static long count(TdxModule tdx, Seamcall call) {
    return tdx.seamcalls().stream().filter(r -> r.call() == call).count();
  }

  private void guest(Vm vm, GuestMemFile file, TdxModule tdx) {
    SoftwareVcpu cpu = vm.softwareVcpu();
    VcpuExit ve = cpu.write(TOUCHED, new byte[8], 0, 8, true);
    out.printf("TD: guest writes private GPA 0x%x -> %s (TDH.MEM.PAGE.AUG left it %s)%n",
        TOUCHED, ve, tdx.sept(TOUCHED).orElseThrow().state());
    long status = cpu.hypercall(TdxAbi.TDG_MEM_PAGE_ACCEPT, TOUCHED).result().value();
    cpu.writeLong(TOUCHED, 0x7d, true);
    out.printf("TD: TDG.MEM.PAGE.ACCEPT -> 0x%x, S-EPT %s; the write completes, guest reads 0x%x%n",
        status, tdx.sept(TOUCHED).orElseThrow().state(), cpu.readLong(TOUCHED, true));

    // The guest shares a page for a device, with MapGPA (the shared bit set), and puts a message there.
    GuestCall call = cpu.hypercall(TdxAbi.TDVMCALL_MAP_GPA, SHARED | TdxAbi.SHARED_BIT, PAGE);
    for (VcpuExit.Hypercall exit; (exit = call.pendingExit()) != null; ) {
      file.setShareability(exit.gpa(), exit.npages() * PAGE, exit.toPrivate() ? Shareability.PRIVATE : Shareability.SHARED);
      out.printf("TD: exit %s; the VMM converted it with setShareability%n", exit);
      call.complete(0);
    }
    out.printf("TD: MapGPA -> status 0x%x%n", call.result().value());
    byte[] msg = "hello from the TD".getBytes(StandardCharsets.US_ASCII);
    cpu.write(SHARED, msg, 0, msg.length, false);
    try (HostMapping map = file.map(SHARED, PAGE, dev.gmem.api.Prot.READ_WRITE, dev.gmem.api.MapFlags.SHARED)) {
      byte[] back = new byte[msg.length];
      map.read(0, back, 0, back.length);
      out.printf("TD: host reads the shared page: \"%s\"%n", new String(back, StandardCharsets.US_ASCII));
    }

    // 5 MiB to shared: KVM hands it out in 2 MiB chunks.
    GuestCall big = cpu.hypercall(TdxAbi.TDVMCALL_MAP_GPA, (1L << 20) | TdxAbi.SHARED_BIT, 5L << 20);
    int exits = 0;
    for (VcpuExit.Hypercall exit; (exit = big.pendingExit()) != null; exits++) {
      file.setShareability(exit.gpa(), exit.npages() * PAGE, Shareability.SHARED);
      big.complete(0);
    }
    out.printf("TD: MapGPA of 5 MiB -> %d exits, status 0x%x%n", exits, big.result().value());

    // The TDX module fails to remove the accepted page when the guest shares it: KVM_BUG_ON.
    tdx.injectFailure(Seamcall.TDH_MEM_PAGE_REMOVE, TdxAbi.TDX_EPT_ENTRY_STATE_INCORRECT);
    file.setShareability(TOUCHED, PAGE, Shareability.SHARED);
    out.printf("TD: TDH.MEM.PAGE.REMOVE failed on GPA 0x%x: VM dead %s, leaked pages %d (module) / %d (inode)%n",
        TOUCHED, vm.isDead(), tdx.leakedPages().size(), file.inode().leakedPages());
    try {
      cpu.readLong(SHARED, false);
    } catch (GmemException e) {
      out.printf("TD: the next guest access -> %s; the VM closes cleanly%n", e.errno());
    }
  }
}
