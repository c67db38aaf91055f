package dev.gmem.examples.cli;

import dev.gmem.api.GmemRuntime;
import dev.gmem.migrate.DestinationOptions;
import dev.gmem.migrate.MigrationDestination;
import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * {@code gmem demo}, post-copy live migration between two JVMs: a child JVM runs
 * {@code gmem migrate --to} (a real guest fills 1 MiB and stops), this one receives it on a
 * loopback port and lets the guest continue at once; both print a CRC32C of every page.
 */
final class PostcopyChapter {
  private PostcopyChapter() {}

  static void run(PrintWriter out, GmemRuntime rt) {
    out.printf("%npost-copy live migration between two JVMs over loopback TCP (gmem migrate):%n");
    if (!rt.backend().name().equals("kvm")) {
      out.println("  needs the kvm backend (a real guest): not run on " + rt.backend().name());
      return;
    }
    try (MigrationDestination d = MigrationDestination.listen(rt, new InetSocketAddress(InetAddress.getLoopbackAddress(), 0),
        DestinationOptions.defaults())) {
      List<String> cmd = childJava();
      cmd.addAll(List.of("migrate", "--to", "127.0.0.1:" + d.port(), "--size", "1", "--max-bandwidth", "2"));
      Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
      CompletableFuture<List<String>> childLines = CompletableFuture.supplyAsync(() -> {
        List<String> lines = new ArrayList<>();
        try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
          r.lines().forEach(lines::add);
        } catch (java.io.IOException e) {
          lines.add("(reading the child failed: " + e + ")");
        }
        return lines;
      });
      StringWriter here = new StringWriter();
      int rc;
      try (PrintWriter w = new PrintWriter(here)) {
        rc = MigrateCommand.receive(w, rt, d);
      }
      if (!p.waitFor(120, TimeUnit.SECONDS)) {
        p.destroyForcibly();
      }
      String sourceCrc = null;
      for (String l : childLines.get()) {
        out.println("  [source JVM " + p.pid() + "] " + l);
        if (l.startsWith("source: every page crc32c ")) {
          sourceCrc = l.substring("source: every page crc32c ".length()).trim();
        }
      }
      String destCrc = null;
      for (String l : here.toString().split("\n")) {
        out.println("  [this JVM] " + l);
        if (l.startsWith("destination: every page crc32c ")) {
          destCrc = l.substring("destination: every page crc32c ".length()).trim();
        }
      }
      out.printf("  every page: %s (source %s, destination %s); guest %s%n", sourceCrc != null && sourceCrc.equals(destCrc)
          ? "identical" : "DIFFERENT", sourceCrc, destCrc, rc == 0 ? "continued with the right checksum" : "FAILED (" + rc + ")");
    } catch (Exception e) {
      out.println("  failed: " + e);
    }
  }

  /** The command line of a child JVM running the gmem tool the way this one runs (module path or class path). */
  static List<String> childJava() {
    List<String> cmd = new ArrayList<>();
    cmd.add(ProcessHandle.current().info().command().orElse("java"));
    cmd.add("--enable-native-access=ALL-UNNAMED");
    String modulePath = System.getProperty("jdk.module.path");
    if (PostcopyChapter.class.getModule().isNamed() && modulePath != null) {
      cmd.addAll(List.of("-p", modulePath, "-m", "dev.gmem.examples/" + GmemTool.class.getName()));
    } else {
      cmd.addAll(List.of("-cp", System.getProperty("java.class.path", "") + File.pathSeparator, GmemTool.class.getName()));
    }
    return cmd;
  }
}
