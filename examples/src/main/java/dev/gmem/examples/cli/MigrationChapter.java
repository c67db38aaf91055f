package dev.gmem.examples.cli;

import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.MapFlags;
import dev.gmem.api.Memslot;
import dev.gmem.api.Prot;
import dev.gmem.api.Registers;
import dev.gmem.api.Segment;
import dev.gmem.api.Shareability;
import dev.gmem.api.SpecialRegisters;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;

/**
 * {@code gmem demo}, intra-host migration: a real guest runs on VM A; the VMM links A's file to VM
 * B ({@code KVM_LINK_GUEST_MEMFD}) and binds the same layout while the guest still runs, then —
 * after the guest's last exit on A — moves the context ({@code KVM_CAP_VM_MOVE_ENC_CONTEXT_FROM})
 * and gives a vCPU of B A's registers. The guest continues on B with its memory in place. The
 * switch-over (last exit on A → first {@code KVM_RUN} on B) is timed at three memory sizes and over
 * several hops (B → C → ...), each hop a full migration to a fresh VM.
 */
final class MigrationChapter {
  private static final long[] SIZES = {64L << 20, 1L << 30, 8L << 30};
  private static final int HOPS = 5;
  private static final int HOP_PORT = 0x11;
  private static final long PAGE = 4096;

  /**
   * The demo's guest ({@link DemoCommand#GUEST}: {@code [0x2001] = [0x2000] + 1}, reported on port
   * 0x10, then {@code hlt} — the last exit on a VM), continued: every later run, on the next VM,
   * reports the byte at 0x2001 on port 0x11, increments it and halts again.
   */
  static final byte[] PROGRAM = concat(DemoCommand.GUEST, new byte[] {
    (byte) 0xa0, 0x01, 0x20, // mov al, [0x2001]
    (byte) 0xe6, HOP_PORT, // out 0x11, al
    (byte) 0xfe, (byte) 0xc0, // inc al
    (byte) 0xa2, 0x01, 0x20, // mov [0x2001], al
    (byte) 0xeb, (byte) 0xf3 // jmp back to the hlt
  });

  private final PrintWriter out;
  private final GmemRuntime rt;

  private MigrationChapter(PrintWriter out, GmemRuntime rt) {
    this.out = out;
    this.rt = rt;
  }

  static void run(PrintWriter out, GmemRuntime rt) {
    MigrationChapter chapter = new MigrationChapter(out, rt);
    out.printf("%nintra-host migration: KVM_LINK_GUEST_MEMFD + KVM_CAP_VM_MOVE_ENC_CONTEXT_FROM (RFC v2 semantics)%n");
    if (rt.backend().name().equals("kvm")) {
      for (long size : SIZES) {
        chapter.migrate(size);
      }
    } else {
      chapter.softwareOnly();
    }
  }

  /** One VM of the chain: its file (linked from the previous owner's), mapping-free, and its vCPU. */
  private record Hop(Vm vm, GuestMemFile file, Vcpu vcpu, long prepareNanos) {
    void close() {
      vcpu.close();
      vm.close();
      file.close();
    }
  }

  private void migrate(long size) {
    Vm a = rt.createVm(VmType.DEFAULT);
    GuestMemFile fa = a.createGuestMemFile(size, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
    try (HostMapping ma = fa.map(0, 4 * PAGE, Prot.READ_WRITE, MapFlags.SHARED)) {
      a.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, size, fa, 0);
      ma.write(DemoCommand.CODE, PROGRAM, 0, PROGRAM.length);
      ma.putByte(DemoCommand.DATA, (byte) 0x41);
      Vcpu va = a.createVcpu(0);
      va.setSpecialRegisters(va.specialRegisters().withCodeSegment(Segment.realMode(0, true)).withDataSegments(Segment.realMode(0, false)));
      va.setRegisters(Registers.initial().withRip(DemoCommand.CODE));
      Hop current = new Hop(a, fa, va, 0);
      String first = describe(va.run());
      long pages = fa.inode().allocatedPages();

      List<Long> switchOver = new ArrayList<>();
      List<Long> prepare = new ArrayList<>();
      List<String> reports = new ArrayList<>();
      for (int hop = 0; hop < HOPS; hop++) {
        // While the guest still has work on the current VM (between exits), the next VM is built.
        Hop next = prepare(current.file(), size);
        prepare.add(next.prepareNanos());
        VcpuExit last = current.vcpu().run();
        long lastExit = System.nanoTime();
        Registers regs = current.vcpu().registers();
        SpecialRegisters sregs = current.vcpu().specialRegisters();
        next.vm().moveEncryptionContextFrom(current.vm());
        next.vcpu().setSpecialRegisters(sregs);
        next.vcpu().setRegisters(regs);
        long firstEntry = System.nanoTime();
        VcpuExit report = next.vcpu().run();
        switchOver.add(firstEntry - lastExit);
        reports.add(last instanceof VcpuExit.Hlt ? describe(report) : "unexpected last exit " + last);
        if (hop > 0) {
          current.close(); // a dead VM (EIO for everything) and its linked file: nothing of the memory goes
        }
        current = next;
      }
      out.printf("%n%d MiB of guest memory (sparse): on VM A the guest %s, then halted: its last exit on A%n", size >> 20, first);
      out.printf("  on VM B, with A's registers: guest %s — the byte it wrote on A, read in place%n", reports.get(0));
      out.printf("  hops B -> C -> ... : %s%n", String.join("; ", reports.subList(1, reports.size())));
      out.printf("  switch-over, last exit -> first KVM_RUN on the next VM (regs out, context move, regs in): median %s, max %s over %d hops (goal: <= 1 ms)%n",
          micros(median(switchOver)), micros(Collections.max(switchOver)), HOPS);
      out.printf("  built ahead while the guest ran: link + bind the same layout, median %s (the kernel's memslot setup, O(bytes) on this host)%n",
          micros(median(prepare)));
      out.printf("  guest memory allocated: %d page(s) before, %d after %d hops — nothing copied%n", pages, fa.inode().allocatedPages(), HOPS);
      current.close();
      a.close();
      fa.close();
    }
  }

  /** Link the current owner's file to a fresh VM, bind the same layout (slot 0 at GPA 0), make its vCPU. */
  private Hop prepare(GuestMemFile from, long size) {
    long start = System.nanoTime();
    Vm vm = rt.createVm(VmType.DEFAULT);
    GuestMemFile file = vm.linkGuestMemFile(from, 0);
    vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, size, file, 0);
    long bound = System.nanoTime();
    return new Hop(vm, file, vm.createVcpu(0), bound - start);
  }

  /** The memfd backend has no KVM: link and move with the software vCPU, on private memory. */
  private void softwareOnly() {
    long size = SIZES[0];
    Vm a = rt.createVm(VmType.SW_PROTECTED);
    GuestMemFile fa = a.createGuestMemFile(size, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
    a.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, size, fa, 0);
    fa.setShareability(0, PAGE, Shareability.PRIVATE);
    a.softwareVcpu().writeLong(0, 0x5ec12e7L, true);
    Vm b = rt.createVm(VmType.SW_PROTECTED);
    GuestMemFile fb = b.linkGuestMemFile(fa, 0);
    b.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, size, fb, 0);
    out.printf("no KVM on this backend: the software vCPU instead. VM B linked and bound A's memory; its private read before the move -> %s%n",
        b.softwareVcpu().read(0, new byte[8], 0, 8, true));
    b.moveEncryptionContextFrom(a);
    out.printf("context moved; B's guest reads A's private 0x%x in place, A's read -> %s%n", b.softwareVcpu().readLong(0, true),
        outcome(() -> a.softwareVcpu().readLong(0, true)));
    b.close();
    fb.close();
    a.close();
    fa.close();
  }

  private static String outcome(Runnable call) {
    try {
      call.run();
      return "ok";
    } catch (GmemException e) {
      return e.errno() + " (the source is dead)";
    }
  }

  private static String describe(VcpuExit exit) {
    return exit instanceof VcpuExit.Io io && io.out()
        ? String.format("reported 0x%02x on port 0x%x", io.value(), io.port())
        : "exited with " + exit;
  }

  private static long median(List<Long> values) {
    long[] v = values.stream().mapToLong(Long::longValue).sorted().toArray();
    return v[v.length / 2];
  }

  private static String micros(long nanos) {
    return String.format("%.1f µs", nanos / 1e3);
  }

  private static byte[] concat(byte[] a, byte[] b) {
    byte[] r = Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, r, a.length, b.length);
    return r;
  }
}
