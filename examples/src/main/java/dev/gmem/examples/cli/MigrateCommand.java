package dev.gmem.examples.cli;

import dev.gmem.api.GmemRuntime;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.migrate.DestinationOptions;
import dev.gmem.migrate.MigrationDestination;
import dev.gmem.migrate.MigrationSource;
import dev.gmem.migrate.MigrationStats;
import dev.gmem.migrate.SourceOptions;
import dev.gmem.userfault.FaultSource;
import dev.gmem.userfault.Userfault;
import java.io.PrintWriter;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.zip.CRC32C;
import picocli.CommandLine;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code gmem migrate}: post-copy live migration of a real KVM guest between two gmem processes.
 * {@code --to HOST:PORT} runs the guest's first pass (it fills {@code --size} MiB), stops it and
 * migrates it; {@code --listen PORT} receives it, lets the guest continue at once — its second pass
 * checksums the memory it sees, faulting in what has not arrived — and prints progress, the final
 * statistics and a CRC32C of every page, which the source prints too. The protocol is
 * unauthenticated plaintext: use a trusted network or a tunnel (README).
 */
@Command(name = "migrate", description = "Post-copy live migration of a real KVM guest between two gmem processes over TCP.")
final class MigrateCommand implements Callable<Integer> {
  @Mixin RuntimeOptions options = new RuntimeOptions();

  @ArgGroup(exclusive = true, multiplicity = "1")
  Mode mode;

  static final class Mode {
    @Option(names = "--listen", paramLabel = "PORT", description = "receive a migration on PORT (0: any free port, printed)")
    Integer listen;

    @Option(names = "--to", paramLabel = "HOST:PORT", description = "migrate a freshly filled guest to HOST:PORT")
    String to;
  }

  @Option(names = "--bind", defaultValue = "0.0.0.0", description = "address to listen on (default: ${DEFAULT-VALUE})")
  String bind;

  @Option(names = "--size", defaultValue = "64", description = "MiB the source's guest fills (default: ${DEFAULT-VALUE})")
  long sizeMiB;

  @Option(names = "--max-bandwidth", defaultValue = "0", description = "MiB/s cap of the background stream, 0 for none (default: ${DEFAULT-VALUE})")
  long maxMiBps;

  @Option(names = "--recovery-timeout", defaultValue = "10", description = "seconds to wait for a broken link to come back (default: ${DEFAULT-VALUE})")
  long recoverySeconds;

  @CommandLine.Spec
  CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() throws Exception {
    PrintWriter out = spec.commandLine().getOut();
    options.backend = "kvm";
    try (GmemRuntime rt = options.open()) {
      return mode.listen != null ? destination(out, rt) : source(out, rt);
    } finally {
      out.flush();
    }
  }

  private int source(PrintWriter out, GmemRuntime rt) throws Exception {
    int colon = mode.to.lastIndexOf(':');
    if (colon < 0) {
      throw new CommandLine.ParameterException(spec.commandLine(), "--to wants HOST:PORT, got " + mode.to);
    }
    String host = mode.to.substring(0, colon);
    int port = Integer.parseInt(mode.to.substring(colon + 1));
    long size = sizeMiB << 20;
    Vm vm = TouchGuest.vm(rt, size);
    try (Vcpu cpu = vm.createVcpu(0)) {
      long t0 = System.nanoTime();
      VcpuExit instead = TouchGuest.fill(cpu);
      if (instead != null) {
        out.println("the guest did not fill its memory: " + instead);
        return 1;
      }
      out.printf("source: guest filled %d MiB in %.1f ms and stopped at rip 0x%x%n", sizeMiB, (System.nanoTime() - t0) / 1e6, cpu.registers().rip());
      out.printf("source: every page crc32c %08x%n", everyPage(vm));
      out.flush();
      SourceOptions opts = SourceOptions.defaults().withRecoveryTimeout(Duration.ofSeconds(recoverySeconds)).withMaxStreamBandwidth(maxMiBps << 20);
      try (MigrationSource s = MigrationSource.start(vm, List.of(cpu), host, port, opts)) {
        out.printf("source: switch-over done, the guest runs on %s (session %016x)%n", mode.to, s.session());
        out.flush();
        MigrationStats st = null;
        while (st == null) {
          try {
            st = s.await(Duration.ofSeconds(1));
          } catch (dev.gmem.api.GmemException e) {
            if (e.errno() != dev.gmem.api.Errno.EAGAIN) {
              out.println("source: migration FAILED: " + e.getMessage());
              out.println("source: the VM is still here, every page intact; resuming it");
              VcpuExit exit = cpu.run();
              out.println("source: the guest resumed and reported " + exit);
              return 3;
            }
            out.println(s.progress());
            out.flush();
          }
        }
        out.println("source: " + st.summary().replace("\n", "\nsource: "));
      }
    }
    vm.close();
    return 0;
  }

  private int destination(PrintWriter out, GmemRuntime rt) throws Exception {
    DestinationOptions opts = DestinationOptions.defaults().withRecoveryTimeout(Duration.ofSeconds(recoverySeconds));
    try (MigrationDestination d = MigrationDestination.listen(rt, new InetSocketAddress(bind, mode.listen), opts)) {
      out.printf("destination: listening on %s:%d%n", bind, d.port());
      out.flush();
      return receive(out, rt, d);
    }
  }

  /** Accepts one migration on {@code d}, runs the guest to its checksum and waits for every page. */
  static int receive(PrintWriter out, GmemRuntime rt, MigrationDestination d) throws Exception {
    long t0 = System.nanoTime();
    d.accept();
    var hs = d.handshake();
    out.printf("destination: handshake: %s VM, %d file(s), %d memslot(s), %d pages, %d vCPU(s); VM runnable%n", hs.type(),
        hs.files().size(), hs.slots().size(), hs.pages(), hs.vcpus().size());
    out.flush();
    long size = hs.slots().get(0).size() - TouchGuest.BASE;
    Thread progress = new Thread(() -> {
      try {
        while (!d.completed() && !d.paused()) {
          Thread.sleep(1000);
          out.println("destination: " + d.progress());
          out.flush();
        }
      } catch (InterruptedException e) {
        // done
      }
    }, "migrate-progress");
    progress.setDaemon(true);
    progress.start();
    VcpuExit exit = d.run(d.vcpus().get(0));
    long ran = System.nanoTime();
    if (!(exit instanceof VcpuExit.Io io) || io.port() != TouchGuest.SUM_PORT) {
      out.println("destination: the guest did not report its checksum: " + exit);
      return 1;
    }
    int sum = ByteBuffer.wrap(io.data()).order(ByteOrder.LITTLE_ENDIAN).getInt();
    out.printf("destination: guest checksum %08x after %.1f ms (expected %08x): %s%n", sum, (ran - t0) / 1e6, TouchGuest.expectedSum(size),
        sum == TouchGuest.expectedSum(size) ? "identical" : "DIFFERENT");
    MigrationStats st = d.await(Duration.ofMinutes(10));
    progress.interrupt();
    out.println("destination: " + d.progress());
    out.println("destination: " + st.summary().replace("\n", "\ndestination: "));
    Userfault uf = rt.feature(Userfault.class).orElseThrow();
    out.printf("destination: fault latency: vCPU %s; host accesses %s%n", uf.stats().latency(FaultSource.VCPU_USERFAULT),
        uf.stats().latency(FaultSource.ASYNC));
    out.printf("destination: every page crc32c %08x%n", everyPage(d.vm()));
    out.flush();
    return sum == TouchGuest.expectedSum(size) ? 0 : 2;
  }

  /** CRC32C over every page of every memslot, in slot order: both sides print it. */
  static int everyPage(Vm vm) {
    CRC32C c = new CRC32C();
    byte[] chunk = new byte[1 << 20];
    for (Memslot m : vm.memslots()) {
      for (long off = 0; off < m.size(); off += chunk.length) {
        int n = (int) Math.min(chunk.length, m.size() - off);
        vm.guestMemory().read(m.gpa() + off, chunk, 0, n);
        c.update(chunk, 0, n);
      }
    }
    return (int) c.getValue();
  }
}
