package dev.gmem.examples.cli;

import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.HugePagePool;
import dev.gmem.api.Memslot;
import dev.gmem.api.Pin;
import dev.gmem.api.PluginDescriptor;
import dev.gmem.api.Registers;
import dev.gmem.api.Segment;
import dev.gmem.api.Shareability;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.host.HostProbe;
import dev.gmem.core.host.HugePages;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/** {@code gmem demo}: the main job, on an embedded default configuration. */
@Command(name = "demo", description = "Create a VM and guest_memfd memory, run a guest on it, punch a hole, show a kernel-exact error.")
final class DemoCommand implements Callable<Integer> {
  private static final long PAGE = 4096;
  static final long CODE = 0x1000;
  static final long DATA = 0x2000;
  private static final int REPORT_PORT = 0x10;

  /**
   * 16-bit real-mode guest: reads the byte at DATA, adds one, stores it at DATA+1, reports it on
   * port 0x10 and halts.
   */
  static final byte[] GUEST = {
    (byte) 0xa0, 0x00, 0x20, // mov al, [0x2000]
    (byte) 0xfe, (byte) 0xc0, // inc al
    (byte) 0xa2, 0x01, 0x20, // mov [0x2001], al
    (byte) 0xe6, REPORT_PORT, // out 0x10, al
    (byte) 0xf4 // hlt
  };

  @Mixin RuntimeOptions options = new RuntimeOptions();

  @CommandLine.Option(names = "--size", description = "guest_memfd size in bytes (default: ${DEFAULT-VALUE})", defaultValue = "65536")
  long size;

  @CommandLine.Spec
  CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() {
    PrintWriter out = spec.commandLine().getOut();
    try (GmemRuntime rt = options.open()) {
      out.printf("backend: %s (%s)%n", rt.backend().name(), rt.backend().reason());
      Vm vm = rt.createVm(VmType.DEFAULT);
      out.printf("VM of type %s; guest_memfd flags it accepts: %s%n", vm.type(), GmemFlags.describe(vm.supportedGuestMemFlags()));
      try (GuestMemFile file = vm.createGuestMemFile(size, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
          HostMapping map = file.map()) {
        out.printf("guest_memfd: %s, inode %d, host mapping at 0x%x%n", file, file.stat().ino(), map.address());
        hostAccess(out, file, map);
        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, size, file, 0);
        out.printf("memslot 0: GPA [0, 0x%x) -> file [0, 0x%x)%n", size, size);
        map.write(CODE, GUEST, 0, GUEST.length);
        map.putByte(DATA, (byte) 0x41);
        if (rt.backend().name().equals("kvm")) {
          realGuest(out, vm, file, map);
        } else {
          softwareGuest(out, vm.softwareVcpu(), file, map);
        }
        badCall(out, file);
      }
      vm.close();
      conversion(out, rt);
      hugePages(out, rt);
      MigrationChapter.run(out, rt);
      PostcopyChapter.run(out, rt);
      TdxChapter.run(out, rt);
      PkvmChapter.run(out, rt);
      if (DirectMapInfo.active(rt)) {
        DirectMapChapter.run(out, rt);
      }
      SnpChapter.run(out, rt);
      UserfaultChapter.run(out, rt);
    }
    out.flush();
    return 0;
  }

  private static void hostAccess(PrintWriter out, GuestMemFile file, HostMapping map) {
    byte[] msg = "hello from the host".getBytes(StandardCharsets.US_ASCII);
    map.write(0, msg, 0, msg.length);
    map.fill(PAGE, PAGE, (byte) 0xaa);
    byte[] back = new byte[msg.length];
    map.read(0, back, 0, back.length);
    out.printf("host wrote and read back \"%s\"; page 1 filled with 0x%02x; %d pages allocated%n",
        new String(back, StandardCharsets.US_ASCII), map.getByte(PAGE) & 0xff, file.inode().allocatedPages());
    file.punchHole(0, PAGE);
    long allocated = file.inode().allocatedPages();
    out.printf("punched page 0: %d page(s) allocated; page 0 now reads 0x%x, page 1 still 0x%02x%n",
        allocated, map.getLong(0), map.getByte(PAGE) & 0xff);
  }

  private static void realGuest(PrintWriter out, Vm vm, GuestMemFile file, HostMapping map) {
    try (Vcpu vcpu = vm.createVcpu(0)) {
      vcpu.setSpecialRegisters(vcpu.specialRegisters()
          .withCodeSegment(Segment.realMode(0, true))
          .withDataSegments(Segment.realMode(0, false)));
      out.printf("real vCPU %d, real mode at 0x%x: %s%n", vcpu.id(), CODE, runOnce(vcpu));
      out.printf("host reads the guest's result at 0x%x: 0x%02x%n", DATA + 1, map.getByte(DATA + 1) & 0xff);
      file.punchHole(DATA, PAGE);
      out.printf("punched the data page; guest runs again: %s%n", runOnce(vcpu));
    }
  }

  private static String runOnce(Vcpu vcpu) {
    vcpu.setRegisters(Registers.initial().withRip(CODE));
    VcpuExit exit = vcpu.run();
    String report = exit instanceof VcpuExit.Io io && io.out() && io.port() == REPORT_PORT
        ? String.format("guest reported 0x%02x on port 0x%x", io.value(), io.port())
        : "unexpected exit " + exit;
    return report + ", then " + vcpu.run();
  }

  /** The memfd backend has no KVM: the same story through the software vCPU. */
  private static void softwareGuest(PrintWriter out, SoftwareVcpu cpu, GuestMemFile file, HostMapping map) {
    byte[] b = new byte[1];
    cpu.read(DATA, b, 0, 1, false);
    b[0]++;
    cpu.write(DATA + 1, b, 0, 1, false);
    out.printf("software vCPU read 0x41 at GPA 0x%x and stored 0x%02x; host sees 0x%02x%n", DATA, b[0], map.getByte(DATA + 1) & 0xff);
    file.punchHole(DATA, PAGE);
    cpu.read(DATA, b, 0, 1, false);
    out.printf("punched the data page; software vCPU now reads 0x%02x%n", b[0]);
  }

  /** In-place conversion on a VM type with private memory, driven by memory-fault exits. */
  private void conversion(PrintWriter out, GmemRuntime rt) {
    Vm vm = rt.createVm(VmType.SW_PROTECTED);
    out.printf("%nVM of type %s (private memory, enforced by gmem in user space)%n", vm.type());
    try (GuestMemFile file = vm.createGuestMemFile(size, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
        HostMapping map = file.map()) {
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, size, file, 0);
      SoftwareVcpu cpu = vm.softwareVcpu();
      long secret = 3 * PAGE;
      map.putLong(secret, 0x5ec12e7L);
      file.setShareability(secret, PAGE, Shareability.PRIVATE);
      out.printf("page 3 converted to private: %s%n", file.inode().shareabilityRanges(0, size / PAGE));
      try {
        map.getLong(secret);
      } catch (GmemException e) {
        out.printf("host read of page 3 -> %s (the kernel raises SIGBUS; the mapping really faults)%n", e.errno());
      }
      out.printf("guest private read of page 3: 0x%x (contents kept in place)%n", cpu.readLong(secret, true));
      VcpuExit exit = cpu.read(secret, new byte[8], 0, 8, false);
      out.printf("guest shared read of page 3 -> %s%n", exit);
      if (exit instanceof VcpuExit.MemoryFault mf) {
        file.setShareability(mf.gpa(), mf.size(), Shareability.SHARED);
        out.printf("VMM converted [0x%x, +0x%x) to shared and retried: %s, host reads 0x%x%n",
            mf.gpa(), mf.size(), cpu.read(secret, new byte[8], 0, 8, false) == null ? "ok" : "exit", map.getLong(secret));
      }
      try (Pin pin = file.pin(4 * PAGE, PAGE)) {
        out.printf("pinned [0x%x, +0x%x) as a device would for DMA%n", pin.offset(), pin.size());
        file.setShareability(0, size, Shareability.PRIVATE);
      } catch (GmemException e) {
        out.printf("to-private with page 4 pinned -> %s at offset 0x%x; nothing changed: %s%n",
            e.errno(), e.errorOffset().orElse(-1), file.inode().shareabilityRanges(0, size / PAGE));
      }
      file.setShareability(0, size, Shareability.PRIVATE);
      out.printf("after the pin is released the same call succeeds: %s%n", file.inode().shareabilityRanges(0, size / PAGE));
    }
    vm.close();
  }

  /**
   * 2 MiB folios from the real hugetlb pool, when the plugin is present. A pool without a free
   * page is grown by one for the chapter, as root, and given back exactly as found afterwards (a
   * shutdown hook does it on Ctrl-C).
   */
  private static void hugePages(PrintWriter out, GmemRuntime rt) {
    long huge = 2L << 20;
    Optional<PluginDescriptor> plugin = rt.plugins().plugins().stream().filter(d -> d.id().equals("hugetlb")).findFirst();
    if (plugin.isEmpty() || plugin.get().status() != PluginDescriptor.Status.ACTIVE) {
      out.printf("%nhugetlb: skipped (%s)%n", plugin.map(d -> "gmem-alloc-hugetlb is " + d.status()
          + d.messageIfAny().map(m -> ": " + m).orElse("")).orElse("gmem-alloc-hugetlb is not on the class path"));
      return;
    }
    long missing = 1 - HostProbe.hugePagePools(HostProbe.SYSFS_HUGEPAGES).stream()
        .filter(p -> p.pageSize() == huge).mapToLong(HugePagePool::available).findFirst().orElse(0);
    HugePages grown = null;
    if (missing > 0) {
      try {
        grown = HugePages.grow(huge, missing);
      } catch (IllegalStateException e) {
        out.printf("%nhugetlb: skipped (no free 2 MiB page in the pool, and it could not be grown: %s)%n", e.getMessage());
        out.printf("hugetlb: run it as root, or raise /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages by one first%n");
        return;
      }
      out.printf("%nhugetlb: the 2 MiB pool had no free page; added %d for this chapter (nr_hugepages %d -> %d),"
          + " given back at its end%n", missing, grown.original(), grown.original() + missing);
    }
    try {
      splitAndMerge(out, rt, huge);
    } finally {
      if (grown != null) {
        grown.close();
        out.printf("hugetlb: pool given back (nr_hugepages %d, as found)%n", grown.counters().total());
      }
    }
  }

  private static void splitAndMerge(PrintWriter out, GmemRuntime rt, long huge) {
    Vm vm = rt.createVm(VmType.SW_PROTECTED);
    try (GuestMemFile file = vm.createGuestMemFile(huge, GmemFlags.MMAP | GmemFlags.hugePageSize(21))) {
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, huge, file, 0);
      SoftwareVcpu cpu = vm.softwareVcpu();
      cpu.writeLong(0, 1, true);
      out.printf("hugetlb: 2 MiB private file from the real pool; guest fault maps order %d; folios %s%n",
          cpu.mappingOrder(0, true), file.inode().folios(0, 1));
      file.setShareability(PAGE, PAGE, Shareability.SHARED);
      out.printf("page 1 shared: the huge folio is split (%d folios), guest maps order %d%n",
          file.inode().folios(0, huge / PAGE).size(), cpu.mappingOrder(0, true));
      file.setShareability(PAGE, PAGE, Shareability.PRIVATE);
      out.printf("page 1 private again: merged back, folios %s%n", file.inode().folios(0, 1));
    } finally {
      vm.close();
    }
  }

  private static void badCall(PrintWriter out, GuestMemFile file) {
    try {
      file.punchHole(1, PAGE);
    } catch (GmemException e) {
      out.printf("punchHole(1, 4096) -> %s (errno %d), exactly what fallocate(2) returns on a guest_memfd%n", e.errno(), e.rawErrno());
    }
  }
}
