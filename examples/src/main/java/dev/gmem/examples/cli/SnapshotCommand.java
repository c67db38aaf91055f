package dev.gmem.examples.cli;

import dev.gmem.api.GmemRuntime;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.userfault.snapshot.Snapshot;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.zip.CRC32C;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code gmem snapshot}: boots a real KVM guest that fills {@code --size} bytes of its memory,
 * stops it at its {@code hlt} and writes the VM — files, shareability, memslots, the vCPU's
 * registers, the memory — to {@code --dir}.
 */
@Command(name = "snapshot", description = "Run a real KVM guest that fills its memory, then snapshot the VM to a directory.")
final class SnapshotCommand implements Callable<Integer> {
  @Mixin RuntimeOptions options = new RuntimeOptions();

  @Option(names = "--dir", required = true, description = "where the snapshot goes")
  Path dir;

  @Option(names = "--size", defaultValue = "256", description = "MiB the guest touches (default: ${DEFAULT-VALUE})")
  long sizeMiB;

  @CommandLine.Spec
  CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() throws Exception {
    PrintWriter out = spec.commandLine().getOut();
    long size = sizeMiB << 20;
    options.backend = "kvm";
    try (GmemRuntime rt = options.open()) {
      Vm vm = TouchGuest.vm(rt, size);
      try (Vcpu cpu = vm.createVcpu(0)) {
        long t0 = System.nanoTime();
        VcpuExit instead = TouchGuest.fill(cpu);
        if (instead != null) {
          out.println("the guest did not fill its memory: " + instead);
          return 1;
        }
        out.printf("guest filled %d MiB in %.1f ms and halted at rip 0x%x%n", sizeMiB, (System.nanoTime() - t0) / 1e6, cpu.registers().rip());
        t0 = System.nanoTime();
        Snapshot s = Snapshot.write(vm, cpu, dir);
        out.printf("snapshot of %d pages (%d memslot, %d file) written to %s in %.1f ms%n", s.pages(), s.slots().size(), s.files().size(), dir,
            (System.nanoTime() - t0) / 1e6);
        out.printf("memory crc32c %08x%n", crc(vm, size));
      }
    }
    out.flush();
    return 0;
  }

  /** CRC32C of the guest's filled region, read through the GPA view. */
  static int crc(Vm vm, long size) {
    CRC32C c = new CRC32C();
    byte[] chunk = new byte[1 << 20];
    for (long off = 0; off < size; off += chunk.length) {
      int n = (int) Math.min(chunk.length, size - off);
      vm.guestMemory().read(TouchGuest.BASE + off, chunk, 0, n);
      c.update(chunk, 0, n);
    }
    return (int) c.getValue();
  }
}
