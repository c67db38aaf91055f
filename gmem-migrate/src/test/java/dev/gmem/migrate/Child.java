package dev.gmem.migrate;

import dev.gmem.api.GmemRuntime;
import dev.gmem.api.Vcpu;
import dev.gmem.api.Vm;
import dev.gmem.core.conformance.Backends;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The other side of a migration in its own JVM, for the kill tests: {@code source PORT SIZE
 * BYTES_PER_SECOND} fills a real guest's memory and migrates it to PORT; {@code destination SIZE}
 * listens, accepts and runs the guest. Each says what it did on a line of stdout.
 */
public final class Child implements AutoCloseable {
  private final Process process;
  private final BufferedReader out;

  private Child(Process process) {
    this.process = process;
    this.out = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
  }

  static Child start(String... args) throws IOException {
    List<String> cmd = new java.util.ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-cp", System.getProperty("java.class.path"), Child.class.getName()));
    cmd.addAll(List.of(args));
    return new Child(new ProcessBuilder(cmd).redirectErrorStream(true).start());
  }

  /** The first line starting with {@code prefix}, without it; fails if the child ends first. */
  String await(String prefix) throws IOException {
    String line;
    StringBuilder seen = new StringBuilder();
    while ((line = out.readLine()) != null) {
      if (line.startsWith(prefix)) {
        return line.substring(prefix.length()).trim();
      }
      seen.append(line).append('\n');
    }
    throw new IllegalStateException("the child ended before saying '" + prefix + "':\n" + seen);
  }

  /** SIGKILL: no shutdown hook, no goodbye on the wire. */
  void kill() {
    process.destroyForcibly();
    try {
      process.waitFor(30, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** SIGSTOP: frozen with its connections open — no FIN, and its kernel still accepts and ACKs. */
  void freeze() throws IOException, InterruptedException {
    int rc = new ProcessBuilder("kill", "-STOP", Long.toString(process.pid())).inheritIO().start().waitFor();
    if (rc != 0) {
      throw new IllegalStateException("kill -STOP " + process.pid() + " exited " + rc);
    }
  }

  @Override
  public void close() {
    kill();
  }

  public static void main(String[] args) throws Exception {
    if (args[0].equals("source")) {
      int port = Integer.parseInt(args[1]);
      long size = Long.parseLong(args[2]);
      long bps = Long.parseLong(args[3]);
      try (GmemRuntime rt = Backends.open("kvm")) {
        Vm vm = Guest.vm(rt, size);
        Vcpu cpu = vm.createVcpu(0);
        Guest.fill(cpu);
        System.out.println("digest " + Guest.hex(Guest.digest(vm)));
        MigrationSource s = MigrationSource.start(vm, List.of(cpu), "127.0.0.1", port, SourceOptions.defaults().withMaxStreamBandwidth(bps));
        System.out.println("migrating");
        s.await(Duration.ofSeconds(120));
        System.out.println("done");
      }
    } else {
      try (GmemRuntime rt = Backends.open("kvm");
          MigrationDestination d = MigrationDestination.listen(rt, new InetSocketAddress(InetAddress.getLoopbackAddress(), 0),
              DestinationOptions.defaults())) {
        System.out.println("port " + d.port());
        d.accept();
        System.out.println("accepted");
        Thread vcpu = new Thread(() -> System.out.println("exit " + d.run(d.vcpus().get(0))));
        vcpu.setDaemon(true);
        vcpu.start();
        while (d.pageServer().demandOrder().size() < 2) {
          Thread.sleep(10);
        }
        System.out.println("faulted " + d.pageServer().demandOrder());
        Thread.sleep(120_000);
      }
    }
  }
}
