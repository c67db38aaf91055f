package dev.gmem.examples.cli;

import dev.gmem.examples.bench.BenchMain;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Unmatched;

/** {@code gmem bench}: the JMH suite, each gmem operation beside its raw baseline, as a ratio table. */
@Command(
    name = "bench",
    description = {
      "Run the JMH benchmarks (each gmem operation beside the raw syscall it stands on, in the same run) and print the ratio table.",
      "Arguments are JMH's: benchmark regexps (default: all) and options, e.g. -f 1 -wi 3 -w 1s -i 5 -r 1s -p backend=memfd -prof gc.",
      "Results go to examples/target/jmh/ as JSON, with the ratio table beside them."
    },
    footer = {"", "Examples:", "  gmem bench", "  gmem bench Punch -f 1", "  gmem bench 'Vcpu|FirstTouch' -p backend=kvm -prof gc", "  gmem bench -h   (JMH's own option list)"})
final class BenchCommand implements Callable<Integer> {
  @Option(names = "--help", usageHelp = true, description = "Show this help.")
  boolean help;

  @Unmatched
  List<String> jmhArgs = new ArrayList<>();

  @CommandLine.Spec
  CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() {
    return BenchMain.run(jmhArgs.toArray(String[]::new), spec.commandLine().getOut(), spec.commandLine().getErr());
  }
}
