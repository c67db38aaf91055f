package dev.gmem.examples.cli;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Registers;
import dev.gmem.api.Segment;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.HostMemory;
import dev.gmem.core.sys.Sys;
import dev.gmem.directmap.DirectMap;
import dev.gmem.directmap.DirectMapStats;
import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

/**
 * The demo's NO_DIRECT_MAP chapter (gmem-direct-map): a file in secret memory populated with
 * {@code write()}, a guest running on it while the kernel's GUP cannot reach it, EEXIST on a
 * second write, the flag refused on a TDX VM by the arch's rule, and {@code gmem info} with and
 * without the jar. Only called when discovery found the feature.
 */
final class DirectMapChapter {
  private static final long PAGE = 4096;
  private static final long SIZE = 64 << 10;

  private DirectMapChapter() {}

  static void run(PrintWriter out, GmemRuntime rt) {
    out.printf("%nNO_DIRECT_MAP (gmem-direct-map): guest memory the host kernel cannot reach%n");
    DirectMap dm = rt.feature(DirectMap.class).orElseThrow();
    Vm vm = rt.createVm(VmType.DEFAULT);
    long flags = GmemFlags.MMAP | GmemFlags.INIT_SHARED | GmemFlags.NO_DIRECT_MAP | GmemFlags.WRITE;
    try (GuestMemFile f = vm.createGuestMemFile(SIZE, flags); HostMapping m = f.map()) {
      long ino = f.inode().ino();
      out.printf("created %s, inode %d: memory from memfd_secret(2)%n", GmemFlags.describe(flags), ino);
      ByteBuffer code = ByteBuffer.allocate((int) PAGE).put(DemoCommand.GUEST);
      code.clear();
      long n = f.write(DemoCommand.CODE, code);
      ByteBuffer data = ByteBuffer.allocate((int) PAGE).put(0, (byte) 0x41);
      n += f.write(DemoCommand.DATA, data);
      out.printf("write() populated %d bytes (guest code and data) before the pages entered the filemap; removed from gmem's direct map: %s%n",
          n, dm.isRemoved(ino, DemoCommand.CODE / PAGE) && dm.isRemoved(ino, DemoCommand.DATA / PAGE));
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, SIZE, f, 0);
      out.printf("guest: %s%n", runGuest(rt, vm, dm));
      out.printf("host mapping (the VMM's own, as upstream keeps it) reads the guest's result: 0x%02x%n", m.getByte(DemoCommand.DATA + 1) & 0xff);
      Sys sys = Sys.load();
      int splice = sys.vmspliceProbe(m.address() + DemoCommand.DATA, PAGE);
      out.printf("the kernel's GUP on the same page: vmsplice -> %s; copy_from_user through the page tables (write to a pipe) -> %s%n",
          splice == 0 ? "took it (not secret?)" : Errno.of(splice), copyFromUser(sys, m.address() + DemoCommand.DATA));
      try {
        f.write(DemoCommand.DATA, ByteBuffer.allocate((int) PAGE));
        out.println("a second write() of the data page succeeded (unexpected)");
      } catch (GmemException e) {
        out.printf("a second write() of the data page: %s (sealed); the guest's byte is still 0x%02x%n", e.errno(), m.getByte(DemoCommand.DATA + 1) & 0xff);
      }
      try {
        f.pin(DemoCommand.DATA, PAGE).close();
        out.println("pin of the data page succeeded (unexpected)");
      } catch (GmemException e) {
        out.printf("pin() of the data page: %s, as GUP fails on memory removed from the direct map%n", e.errno());
      }
      f.punchHole(DemoCommand.DATA, PAGE);
      DirectMap.InodeAccounting a = dm.accounting(ino).orElseThrow();
      out.printf("punched the data page: %d page(s) in the filemap, %d secret page(s) resident, %d held (zeroed; secret memory is freed with its inode)%n",
          a.present(), a.resident(), a.held());
      vm.deleteMemoryRegion(0);
    }
    DirectMapStats s = dm.stats();
    out.printf("direct map: %d zaps, %d restores, %d mprotect calls (a fresh page was never mapped there: only restored pages cost one);"
        + " temporary mappings: %d opened, %d open now, %d bytes copied%n",
        s.zaps(), s.restores(), s.viewProtects(), s.temporaryMappings().opened(), s.temporaryMappings().open(), s.temporaryMappings().bytesCopied());
    vm.close();
    tdx(out, rt);
    withAndWithoutTheJar(out, rt);
  }

  private static String copyFromUser(Sys sys, long addr) {
    int[] p = sys.pipe();
    try {
      sys.write(p[1], addr, 8);
      return "works";
    } catch (GmemException e) {
      return e.errno().toString();
    } finally {
      sys.closeQuietly(p[0]);
      sys.closeQuietly(p[1]);
    }
  }

  private static String runGuest(GmemRuntime rt, Vm vm, DirectMap dm) {
    if (rt.backend().name().equals("kvm") && dm.realVcpu(rt).runs()) {
      try (Vcpu cpu = vm.createVcpu(0)) {
        cpu.setSpecialRegisters(cpu.specialRegisters().withCodeSegment(Segment.realMode(0, true)).withDataSegments(Segment.realMode(0, false)));
        cpu.setRegisters(Registers.initial().withRip(DemoCommand.CODE));
        VcpuExit exit = cpu.run();
        return "a real vCPU ran from secret memory: " + (exit instanceof VcpuExit.Io io ? "reported 0x" + Long.toHexString(io.value()) + " on port 0x" + Integer.toHexString(io.port()) : exit);
      }
    }
    byte[] b = new byte[1];
    vm.softwareVcpu().read(DemoCommand.DATA, b, 0, 1, false);
    b[0]++;
    vm.softwareVcpu().write(DemoCommand.DATA + 1, b, 0, 1, false);
    return "the software vCPU (through the memslot's userspace_addr) read 0x41 and stored 0x" + Integer.toHexString(b[0]);
  }

  /** The refusal comes from the arch's rule (v12: TDX and SNP cannot use NO_DIRECT_MAP), whichever arch serves TDX. */
  private static void tdx(PrintWriter out, GmemRuntime rt) {
    GmemRuntime tdxRuntime = null;
    String who = "the TDX arch on the class path";
    try {
      Vm vm;
      try {
        vm = rt.createVm(VmType.TDX);
      } catch (GmemException e) {
        tdxRuntime = withRuleArch(rt);
        vm = tdxRuntime.createVm(VmType.TDX);
        who = "a rule-only stand-in for gmem-arch-tdx (supportsNoDirectMap() = false, as v12's x86 rule for TDX)";
      }
      out.printf("TDX VM, served by %s: accepts %s%n", who, GmemFlags.describe(vm.supportedGuestMemFlags()));
      try (GuestMemFile f = vm.createGuestMemFile(SIZE, GmemFlags.MMAP | GmemFlags.NO_DIRECT_MAP)) {
        out.println("  NO_DIRECT_MAP accepted (unexpected)");
      } catch (GmemException e) {
        out.printf("  createGuestMemFile(MMAP|NO_DIRECT_MAP): %s%n", e.errno());
      }
    } finally {
      if (tdxRuntime != null) {
        tdxRuntime.close();
      }
    }
  }

  private static GmemRuntime withRuleArch(GmemRuntime rt) {
    try {
      Path dir = Files.createTempDirectory("gmem-demo-services");
      Path services = Files.createDirectories(dir.resolve("META-INF/services"));
      Files.writeString(services.resolve(ArchProvider.class.getName()), TdxRule.class.getName() + "\n");
      ClassLoader loader = new URLClassLoader(new URL[] {dir.toUri().toURL()}, DirectMapChapter.class.getClassLoader());
      GmemRuntime.Builder b = GmemRuntime.builder().classLoader(loader).property("gmem.arch.TDX", TdxRule.ID);
      rt.properties().forEach(b::property);
      return b.build();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The TDX rule and nothing else: private memory, no NO_DIRECT_MAP. */
  public static final class TdxRule implements ArchProvider {
    static final String ID = "demo-tdx-rule";

    @Override
    public String id() {
      return ID;
    }

    @Override
    public Set<VmType> vmTypes() {
      return Set.of(VmType.TDX);
    }

    @Override
    public ArchHooks create(VmType type, HostMemory host) {
      return new ArchHooks() {
        @Override
        public boolean hasPrivateMemory() {
          return true;
        }

        @Override
        public boolean supportsNoDirectMap() {
          return false;
        }
      };
    }
  }

  /**
   * {@code gmem info}'s relevant lines in this JVM, and in a child JVM whose class path is this
   * one's without the gmem-direct-map jar: the feature is selected by the class path alone.
   */
  private static void withAndWithoutTheJar(PrintWriter out, GmemRuntime rt) {
    StringWriter with = new StringWriter();
    try (PrintWriter w = new PrintWriter(with)) {
      InfoCommand.print(rt, w);
    }
    out.println("gmem info with the jar on the class path:");
    relevant(Arrays.asList(with.toString().split("\n"))).forEach(l -> out.println("  |" + l));
    List<String> cp = Arrays.asList(System.getProperty("java.class.path", "").split(File.pathSeparator));
    List<String> without = cp.stream().filter(e -> !e.contains("gmem-direct-map")).collect(Collectors.toList());
    if (without.size() == cp.size()) {
      out.println("gmem info without the jar: this JVM's class path has no separate gmem-direct-map entry to leave out"
          + " (run: java -cp <the class path without it> dev.gmem.examples.cli.GmemTool info)");
      return;
    }
    List<String> command = new ArrayList<>();
    command.add(ProcessHandle.current().info().command().orElse("java"));
    command.add("--enable-native-access=ALL-UNNAMED");
    command.add("-cp");
    command.add(String.join(File.pathSeparator, without));
    rt.properties().forEach((k, v) -> command.add("-D" + k + "=" + v));
    command.add("dev.gmem.examples.cli.GmemTool");
    command.add("info");
    out.println("gmem info in a child JVM without the jar on the class path:");
    try {
      Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
      List<String> lines;
      try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
        lines = r.lines().collect(Collectors.toList());
      }
      if (!p.waitFor(120, TimeUnit.SECONDS)) {
        p.destroyForcibly();
      }
      relevant(lines).forEach(l -> out.println("  |" + l));
    } catch (IOException e) {
      out.println("  could not start it: " + e.getMessage());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private static List<String> relevant(List<String> info) {
    List<String> keep = new ArrayList<>();
    boolean inSection = false;
    for (String l : info) {
      if (l.startsWith("Direct map")) {
        inSection = true;
      } else if (l.isBlank()) {
        inSection = false;
      }
      if (inSection || l.startsWith("  DEFAULT ") || l.contains("direct-map")) {
        keep.add(l);
      }
    }
    return keep;
  }
}
