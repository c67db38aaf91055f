package dev.gmem.examples.cli;

import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/** {@code gmem demo}: the main job, on an embedded default configuration. */
@Command(name = "demo", description = "Create a VM and guest_memfd memory, use it from the host, punch a hole, show a kernel-exact error.")
final class DemoCommand implements Callable<Integer> {
  private static final long PAGE = 4096;

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
      out.printf("VM of type %s, guest_memfd flags it accepts: %s%n", vm.type(), GmemFlags.describe(vm.supportedGuestMemFlags()));
      try (GuestMemFile file = vm.createGuestMemFile(size, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
          HostMapping map = file.map()) {
        out.printf("created %s, inode %d, mapped at 0x%x%n", file, file.stat().ino(), map.address());

        byte[] msg = "hello from the host".getBytes(StandardCharsets.US_ASCII);
        map.write(0, msg, 0, msg.length);
        map.fill(PAGE, PAGE, (byte) 0xaa);
        byte[] back = new byte[msg.length];
        map.read(0, back, 0, back.length);
        out.printf("page 0 reads back: \"%s\"; page 1 byte 0 = 0x%02x; %d pages allocated%n",
            new String(back, StandardCharsets.US_ASCII), map.getByte(PAGE) & 0xff, file.inode().allocatedPages());

        file.punchHole(0, PAGE);
        out.printf("punched page 0: first long now 0x%x, page 1 still 0x%02x; %d pages allocated%n",
            map.getLong(0), map.getByte(PAGE) & 0xff, file.inode().allocatedPages());

        try {
          file.punchHole(1, PAGE);
        } catch (GmemException e) {
          out.printf("punchHole(1, 4096) -> %s (errno %d), exactly what fallocate(2) returns on a guest_memfd%n", e.errno(), e.rawErrno());
        }
      }
      vm.close();
    }
    out.flush();
    return 0;
  }
}
