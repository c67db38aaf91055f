package dev.gmem.examples.cli;

import dev.gmem.api.GmemRuntime;
import dev.gmem.api.VcpuExit;
import dev.gmem.userfault.FaultSource;
import dev.gmem.userfault.Userfault;
import dev.gmem.userfault.snapshot.LazyRestore;
import dev.gmem.userfault.snapshot.Snapshot;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code gmem restore}: restores a {@code gmem snapshot} lazily — the VM runs at once, its pages
 * come on demand from the snapshot (KVM Userfault exits) while a background fill brings the rest —
 * and lets the guest continue: its second pass checksums the memory it sees. Prints the time to the
 * first instruction, to the guest's result and to full residency, the demand faults, and whether
 * memory is identical to the snapshot.
 */
@Command(name = "restore", description = "Lazily restore a gmem snapshot and let its guest continue (checksums its memory).")
final class RestoreCommand implements Callable<Integer> {
  @Mixin RuntimeOptions options = new RuntimeOptions();

  @Option(names = "--dir", required = true, description = "the snapshot")
  Path dir;

  @Option(names = "--no-prefetch", description = "do not prefetch the last restore's working set first")
  boolean noPrefetch;

  @Option(names = "--no-background", description = "serve demanded pages only, no background fill")
  boolean noBackground;

  @Option(names = "--no-record", description = "do not record this restore's demand order as the working set")
  boolean noRecord;

  @CommandLine.Spec
  CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() throws Exception {
    PrintWriter out = spec.commandLine().getOut();
    options.backend = "kvm";
    boolean prefetch = !noPrefetch;
    boolean background = !noBackground;
    boolean record = !noRecord;
    Snapshot snap = Snapshot.read(dir);
    long size = snap.slots().get(0).size() - TouchGuest.BASE;
    try (GmemRuntime rt = options.open()) {
      Userfault uf = rt.feature(Userfault.class).orElseThrow(() -> new IllegalStateException("the userfault feature is off"));
      long t0 = System.nanoTime();
      int prefetched = prefetch ? snap.workingSet().size() : 0;
      try (LazyRestore r = LazyRestore.start(rt, snap, prefetch, background)) {
        long runnable = System.nanoTime();
        out.printf("restore: VM runnable after %.2f ms (%d pages missing, %d prefetch hints)%n", (runnable - t0) / 1e6,
            r.server().totalPages() - r.server().residentPages(), prefetched);
        VcpuExit exit = r.run();
        long done = System.nanoTime();
        long firstInsn = uf.stats().latency(FaultSource.VCPU_USERFAULT).total() > 0 ? runnable : done;
        if (!(exit instanceof VcpuExit.Io io) || io.port() != TouchGuest.SUM_PORT) {
          out.println("the guest did not report its checksum: " + exit);
          return 1;
        }
        int sum = ByteBuffer.wrap(io.data()).order(ByteOrder.LITTLE_ENDIAN).getInt();
        out.printf("guest checksum %08x after %.1f ms (expected %08x): %s%n", sum, (done - t0) / 1e6, TouchGuest.expectedSum(size),
            sum == TouchGuest.expectedSum(size) ? "identical" : "DIFFERENT");
        out.printf("first instruction within %.2f ms of the start%n", (firstInsn - t0) / 1e6);
        long demand = r.server().demandOrder().size();
        out.printf("%d demand faults before the guest's result%n", demand);
        long lastLine = System.nanoTime();
        while (background && !r.server().complete() && !r.server().paused()) {
          Thread.sleep(5);
          if (System.nanoTime() - lastLine > 1_000_000_000L) {
            out.println(r.server().progress());
            out.flush();
            lastLine = System.nanoTime();
          }
        }
        long resident = System.nanoTime();
        out.printf("full residency %s after %.1f ms; faults resolved: vCPU %d, async %d; vCPU fault latency %s%n",
            background ? "reached" : "not asked for", (resident - t0) / 1e6,
            uf.stats().resolved(FaultSource.VCPU_USERFAULT), uf.stats().resolved(FaultSource.ASYNC), uf.stats().latency(FaultSource.VCPU_USERFAULT));
        if (background) {
          int crc = SnapshotCommand.crc(r.vm(), size);
          out.printf("memory crc32c %08x%n", crc);
        }
        if (record) {
          r.recordWorkingSet();
          out.printf("working set of %d pages recorded for the next restore%n", r.server().demandOrder().size());
        }
        out.flush();
        return sum == TouchGuest.expectedSum(size) ? 0 : 2;
      }
    }
  }
}
