package dev.gmem.examples.cli;

import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestCall;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.arch.snp.PageStateChange;
import dev.gmem.arch.snp.PageType;
import dev.gmem.arch.snp.SnpArch;
import dev.gmem.arch.snp.SnpGuest;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * {@code gmem demo}, SEV-SNP (gmem-arch-snp): an SNP guest is built with SNP_LAUNCH_UPDATE (NORMAL
 * pages, a ZERO page, a CPUID page the firmware first corrects) and its launch digest printed —
 * twice, from scratch, to show it is reproducible; then LAUNCH_FINISH, the guest validates its
 * memory (PVALIDATE; an access before that is a #VC), shares one page with a page state change that
 * the VMM completes with {@code setShareability}, and the host reads what the guest put there. A
 * last VM's reclaim fails (fault injection): the page is leaked and the VM dies cleanly.
 */
final class SnpChapter {
  private static final long PAGE = 4096;
  private static final long GPA = 0x10_0000;
  private static final int PAGES = 16;

  private SnpChapter() {}

  static void run(PrintWriter out, GmemRuntime rt) {
    Vm probe;
    try {
      probe = rt.createVm(VmType.SNP);
    } catch (GmemException e) {
      out.printf("%nSEV-SNP: skipped, no arch serves VmType.SNP (%s)%n", e.getMessage());
      return;
    }
    out.printf("%nSEV-SNP VM (gmem-arch-snp; no SNP hardware: RMP, PVALIDATE and firmware modelled, the digest computed for real)%n");
    String first = launch(out, probe, true);
    Vm again = rt.createVm(VmType.SNP);
    String second = launch(out, again, false);
    out.printf("  a second VM built from the same image: %s -> %s%n", second, first.equals(second) ? "the same measurement" : "DIFFERENT (bug)");
    again.close();
    runGuest(out, probe);
    if (rt.backend().name().equals("kvm")) {
      realVcpu(out, probe);
    }
    probe.close();
    failingReclaim(out, rt);
  }

  private static ByteBuffer image() {
    ByteBuffer b = ByteBuffer.allocate((int) (2 * PAGE));
    byte[] text = "an SNP guest's initial image: kernel, command line, ...".getBytes(StandardCharsets.US_ASCII);
    for (int i = 0; i < b.capacity(); i++) {
      b.put(i, i < text.length ? text[i] : (byte) (i * 7));
    }
    return b;
  }

  private static ByteBuffer cpuidPage() {
    ByteBuffer b = ByteBuffer.allocate((int) PAGE).order(ByteOrder.LITTLE_ENDIAN);
    b.putInt(0, 1);
    b.putInt(16, 7); // leaf 7, subleaf 0
    b.putInt(16 + 28, 0xffff_ffff); // EBX: every feature claimed
    return b;
  }

  /** Builds the launch image into {@code vm}; returns the measurement as hex. */
  private static String launch(PrintWriter out, Vm vm, boolean verbose) {
    SnpArch snp = vm.arch(SnpArch.class).orElseThrow();
    GuestMemFile f = vm.createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP);
    vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, PAGES * PAGE, f, 0);
    // The modelled platform lacks CPUID.7.EBX bit 20 (SMAP): the firmware will correct a table claiming it.
    snp.cpuidPolicy((leaf, sub, regs) -> leaf == 7 ? new int[] {regs[0], regs[1] & ~(1 << 20), regs[2], regs[3]} : regs.clone());
    snp.launchUpdateLimit(1);
    ByteBuffer image = image();
    long done = vm.populate(GPA, image, 2, PageType.NORMAL.value());
    long rest = vm.populate(GPA + done * PAGE, image, 2 - done, PageType.NORMAL.value());
    vm.populate(GPA + 2 * PAGE, null, 1, PageType.ZERO.value());
    ByteBuffer cpuid = cpuidPage();
    try {
      vm.populate(GPA + 3 * PAGE, cpuid, 1, PageType.CPUID.value());
    } catch (GmemException e) {
      if (verbose) {
        out.printf("  CPUID page -> %s; corrected EBX copied back: 0x%08x%n", e.errno(), cpuid.getInt(16 + 28));
      }
    }
    vm.populate(GPA + 3 * PAGE, cpuid, 1, PageType.CPUID.value());
    vm.finalizeLaunch();
    String hex = hex(snp.measurement());
    if (verbose) {
      out.printf("  SNP_LAUNCH_UPDATE: 2 NORMAL pages (the firmware took %d, the VMM resumed for %d), 1 ZERO, 1 CPUID; SNP_LAUNCH_FINISH%n", done, rest);
      out.printf("  launch digest (SHA-384 over the PAGE_INFO chain): %s%n", hex);
    }
    return hex;
  }

  private static void runGuest(PrintWriter out, Vm vm) {
    SnpArch snp = vm.arch(SnpArch.class).orElseThrow();
    SoftwareVcpu cpu = vm.softwareVcpu();
    GuestMemFile f = vm.memslots().get(0).file();
    long data = GPA + 8 * PAGE;
    long shared = GPA + 9 * PAGE;
    VcpuExit vc = cpu.read(data, new byte[8], 0, 8, true);
    out.printf("  guest reads a page it has not validated -> %s%n", vc);
    out.printf("  guest PVALIDATEs pages 4..15 -> %s; RMP of page 8: %s%n",
        SnpGuest.pvalidateRange(cpu, GPA + 4 * PAGE, 12 * PAGE, true) == 0 ? "ok" : "failed",
        snp.rmpEntry(new GmemPage(f.inode().ino(), 8)));
    cpu.writeLong(data, 0x5ec12e7L, true);
    out.printf("  guest private write and read back: 0x%x%n", cpu.readLong(data, true));

    SnpGuest.pvalidate(cpu, shared, false, false);
    GuestCall psc = SnpGuest.pageStateChangeMsr(cpu, shared, PageStateChange.OP_SHARED);
    for (VcpuExit.Hypercall exit; (exit = psc.pendingExit()) != null; ) {
      out.printf("  guest rescinds page 9 and asks to share it (GHCB MSR PSC) -> exit %s%n", exit);
      f.setShareability(exit.arg(0) - GPA, exit.arg(1) * PAGE, Shareability.SHARED);
      psc.complete(0);
    }
    out.printf("  VMM converted it with setShareability and completed: guest sees 0x%x (GHCB_MSR_PSC_RESP)%n", psc.result().value());
    byte[] msg = "hello host, from the SNP guest".getBytes(StandardCharsets.US_ASCII);
    cpu.write(shared, msg, 0, msg.length, false);
    try (HostMapping m = f.map()) {
      byte[] seen = new byte[msg.length];
      m.read(9 * PAGE, seen, 0, seen.length);
      out.printf("  host reads the shared page: \"%s\"%n", new String(seen, StandardCharsets.US_ASCII));
      try {
        m.getLong(8 * PAGE);
      } catch (GmemException e) {
        out.printf("  host reads the private page 8 -> %s (RMP check refusals so far: %d)%n", e.errno(), snp.rmpViolations());
      }
    }
  }

  /**
   * The DEFAULT KVM VM under the SNP VM: a real vCPU in real mode (shared accesses only: no C-bit
   * on 6.18) reads the page the guest shared, and its read of a private page exits.
   */
  private static void realVcpu(PrintWriter out, Vm vm) {
    GuestMemFile f = vm.memslots().get(0).file();
    // Real mode reaches up to 0x10ffef: segment 0xffff (base 0xffff0) covers the chapter's pages 8..10.
    int seg = 0xffff;
    long base = (long) seg << 4;
    f.setShareability(10 * PAGE, PAGE, Shareability.SHARED); // the VMM shares a page for the vCPU's code
    long shared = GPA + 9 * PAGE - base;
    long priv = GPA + 8 * PAGE - base;
    byte[] program = {
      (byte) 0xa0, (byte) shared, (byte) (shared >>> 8), // mov al, [page 9]   ; shared
      (byte) 0xe6, 0x10, //                                out 0x10, al
      (byte) 0xa0, (byte) priv, (byte) (priv >>> 8), //     mov al, [page 8]   ; private
      (byte) 0xe6, 0x10, //                                out 0x10, al
      (byte) 0xf4 //                                       hlt
    };
    try (HostMapping m = f.map(); dev.gmem.api.Vcpu cpu = vm.createVcpu(0)) {
      m.write(10 * PAGE, program, 0, program.length);
      cpu.setSpecialRegisters(cpu.specialRegisters()
          .withCodeSegment(dev.gmem.api.Segment.realMode(seg, true))
          .withDataSegments(dev.gmem.api.Segment.realMode(seg, false)));
      cpu.setRegisters(dev.gmem.api.Registers.initial().withRip(GPA + 10 * PAGE - base));
      VcpuExit first = cpu.run();
      out.printf("  a real vCPU of the DEFAULT KVM VM underneath reads the shared page: %s ('%c')%n", first,
          first instanceof VcpuExit.Io io ? (char) io.data()[0] : '?');
      out.printf("  and the private page 8 (a shared access: no C-bit here) -> %s%n", cpu.run());
    }
  }

  private static void failingReclaim(PrintWriter out, GmemRuntime rt) {
    Vm vm = rt.createVm(VmType.SNP);
    SnpArch snp = vm.arch(SnpArch.class).orElseThrow();
    GuestMemFile f = vm.createGuestMemFile(4 * PAGE, GmemFlags.MMAP);
    vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 4 * PAGE, f, 0);
    vm.finalizeLaunch();
    SnpGuest.pvalidate(vm.softwareVcpu(), GPA + PAGE, false, true);
    snp.failReclaim(new GmemPage(f.inode().ino(), 1), true);
    f.punchHole(PAGE, PAGE);
    out.printf("  a reclaim fails (injected RMPUPDATE failure): leaked pages %d, VM dead: %s", f.inode().leakedPages(), vm.isDead());
    try {
      vm.softwareVcpu().readLong(GPA, true);
    } catch (GmemException e) {
      out.printf(", next guest access -> %s", e.errno());
    }
    vm.close();
    out.printf(", VM closed cleanly%n");
  }

  private static String hex(byte[] b) {
    StringBuilder s = new StringBuilder();
    for (byte x : Arrays.copyOf(b, b.length)) {
      s.append(String.format("%02x", x & 0xff));
    }
    return s.toString();
  }
}
