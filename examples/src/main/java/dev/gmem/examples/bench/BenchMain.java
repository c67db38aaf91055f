package dev.gmem.examples.bench;

import dev.gmem.api.GmemRuntime;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.lang.management.ManagementFactory;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.CodeSource;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import org.openjdk.jmh.infra.BenchmarkParams;
import org.openjdk.jmh.results.BenchmarkResult;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.results.format.ResultFormatFactory;
import org.openjdk.jmh.results.format.ResultFormatType;
import org.openjdk.jmh.runner.BenchmarkList;
import org.openjdk.jmh.runner.BenchmarkListEntry;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.format.OutputFormatFactory;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.CommandLineOptionException;
import org.openjdk.jmh.runner.options.CommandLineOptions;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.VerboseMode;

/**
 * Runs gmem's JMH benchmarks and prints the ratio table.
 *
 * <p>Arguments are JMH's own command line: benchmark regexps (default: every benchmark of this
 * package) and options such as {@code -f} (forks), {@code -wi}/{@code -w} (warmup iterations/time),
 * {@code -i}/{@code -r} (measurement iterations/time), {@code -p backend=memfd}, {@code -prof gc},
 * {@code -rf}/{@code -rff}. What is not given comes from the benchmarks' annotations
 * ({@link BenchDefaults}).
 *
 * <p>On top of plain JMH:
 * <ul>
 *   <li>the baseline of every selected gmem benchmark is added to the run, so a ratio always comes
 *       from one run;</li>
 *   <li>forks are run in <em>rounds</em>: {@code -f N} runs the whole selection N times with one
 *       fork per benchmark, alternating the order (A B, B A, ...), and merges the forks of each
 *       benchmark. On a shared, noisy machine a gmem benchmark and its baseline then see the same
 *       background load instead of minutes apart;</li>
 *   <li>when {@code /dev/kvm} is not usable and no {@code backend} is given, only {@code memfd} runs;</li>
 *   <li>results are written as JSON into {@code examples/target/jmh/} (next to the jar) unless
 *       {@code -rf}/{@code -rff} say otherwise, with the ratio table beside them.</li>
 * </ul>
 */
public final class BenchMain {
  private static final String PACKAGE = BenchMain.class.getPackageName();

  private BenchMain() {}

  public static void main(String[] args) {
    PrintWriter out = new PrintWriter(System.out, true, StandardCharsets.UTF_8);
    System.exit(run(args, out, new PrintWriter(System.err, true, StandardCharsets.UTF_8)));
  }

  /**
   * Runs the benchmarks {@code args} select. Returns 0 when every pair produced results (whatever
   * the verdicts: timings on a shared machine are information, not a gate), 1 when a benchmark
   * failed or on error, 2 on bad usage.
   */
  public static int run(String[] args, PrintWriter out, PrintWriter err) {
    CommandLineOptions cli;
    try {
      cli = new CommandLineOptions(args);
    } catch (CommandLineOptionException e) {
      err.println("gmem bench: " + e.getMessage());
      return 2;
    }
    try {
      if (cli.shouldHelp()) {
        cli.showHelp();
        return 0;
      }
      if (cli.shouldListProfilers()) {
        cli.listProfilers();
        return 0;
      }
      if (cli.shouldListResultFormats()) {
        cli.listResultFormats();
        return 0;
      }
      List<String> includes = withBaselines(cli.getIncludes().isEmpty() ? List.of(Pattern.quote(PACKAGE + ".")) : cli.getIncludes(), cli.getExcludes());
      boolean memfdOnly = !cli.getParameter("backend").hasValue() && !kvmUsable();
      if (cli.shouldList() || cli.shouldListWithParams()) {
        ChainedOptionsBuilder b = new OptionsBuilder().parent(cli);
        includes.forEach(b::include);
        new Runner(b.build()).list();
        return 0;
      }
      List<String> selected = selection(includes, cli.getExcludes());
      if (selected.isEmpty()) {
        err.println("gmem bench: no benchmark matches " + cli.getIncludes() + " (gmem bench -l lists them)");
        return 2;
      }
      if (memfdOnly) {
        out.println("gmem bench: /dev/kvm is not usable here; running the memfd backend only (-p backend=... to choose)");
      }
      out.flush();
      List<RunResult> results = runRounds(cli, includes, selected, memfdOnly);

      ByteArrayOutputStream summary = new ByteArrayOutputStream();
      try (PrintStream ps = new PrintStream(summary, true, StandardCharsets.UTF_8)) {
        ResultFormatFactory.getInstance(ResultFormatType.TEXT, ps).writeOut(results);
      }
      out.println();
      out.print(summary.toString(StandardCharsets.UTF_8));
      RatioTable table = RatioTable.of(results, selected);
      table.print(out);

      ResultFormatType format = cli.getResultFormat().orElse(ResultFormatType.JSON);
      Path file = cli.getResult().hasValue()
          ? Path.of(cli.getResult().get())
          : resultDirectory().resolve("jmh-" + LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss", Locale.ROOT))
              + "." + format.toString().toLowerCase(Locale.ROOT));
      Path dir = file.toAbsolutePath().getParent();
      if (dir != null) {
        Files.createDirectories(dir);
      }
      ResultFormatFactory.getInstance(format, file.toString()).writeOut(results);
      StringWriter text = new StringWriter();
      table.print(new PrintWriter(text));
      Path txt = file.resolveSibling(file.getFileName().toString().replaceFirst("\\.[^.]*$", "") + "-ratios.txt");
      Files.writeString(txt, text.toString(), StandardCharsets.UTF_8);
      out.println("results: " + file.toAbsolutePath());
      out.println("ratios:  " + txt.toAbsolutePath());
      out.flush();
      return table.hasMissingResults() ? 1 : 0;
    } catch (RunnerException | IOException | RuntimeException e) {
      err.println("gmem bench: " + e);
      e.printStackTrace(err);
      err.flush();
      return 1;
    }
  }

  /**
   * Runs every selected benchmark with one fork per round, as many rounds as forks were asked for
   * ({@code -f}, else the annotations' {@link BenchDefaults#FORKS}); {@code -f 0} runs once in this JVM.
   * Even rounds run the selection in reverse order. Returns one merged result per benchmark, mode
   * and parameter set, with all its forks.
   */
  private static List<RunResult> runRounds(CommandLineOptions cli, List<String> includes, List<String> selected, boolean memfdOnly)
      throws RunnerException {
    int forks = cli.getForkCount().orElse(BenchDefaults.FORKS);
    int rounds = Math.max(1, forks);
    boolean inheritsNativeAccess = ManagementFactory.getRuntimeMXBean().getInputArguments().contains(BenchDefaults.NATIVE_ACCESS);
    Map<String, BenchmarkParams> params = new LinkedHashMap<>();
    Map<String, List<BenchmarkResult>> forksByKey = new LinkedHashMap<>();
    int steps = rounds * selected.size();
    int step = 0;
    for (int round = 1; round <= rounds; round++) {
      List<String> order = new ArrayList<>(selected);
      if (round % 2 == 0) {
        Collections.reverse(order);
      }
      for (String bench : order) {
        step++;
        System.out.printf("%n# gmem bench: round %d/%d, step %d/%d: %s%n", round, rounds, step, steps, bench);
        ChainedOptionsBuilder b = new OptionsBuilder().parent(cli).forks(Math.min(forks, 1));
        includes.forEach(b::include);
        for (String other : selected) {
          if (!other.equals(bench)) {
            b.exclude(exact(other));
          }
        }
        if (memfdOnly) {
          b.param("backend", "memfd");
        }
        if (!cli.getJvmArgsAppend().hasValue() && inheritsNativeAccess) {
          // JMH forks inherit this JVM's flags; do not append the annotations' copy a second time.
          b.jvmArgsAppend();
        }
        VerboseMode verbosity = cli.verbosity().orElse(VerboseMode.NORMAL);
        Runner runner = new Runner(b.build(), new StepOutput(OutputFormatFactory.createFormatInstance(System.out, verbosity)));
        for (RunResult r : runner.run()) {
          String key = key(r.getParams());
          params.putIfAbsent(key, r.getParams());
          forksByKey.computeIfAbsent(key, k -> new ArrayList<>()).addAll(r.getBenchmarkResults());
        }
      }
    }
    List<RunResult> merged = new ArrayList<>();
    forksByKey.forEach((k, v) -> merged.add(new RunResult(params.get(k), v)));
    merged.sort(RunResult.DEFAULT_SORT_COMPARATOR);
    return merged;
  }

  private static String key(BenchmarkParams p) {
    StringBuilder sb = new StringBuilder(p.getBenchmark()).append(' ').append(p.getMode());
    for (String k : p.getParamsKeys()) {
      sb.append(' ').append(k).append('=').append(p.getParam(k));
    }
    return sb.toString();
  }

  private static String exact(String benchmark) {
    return "^" + Pattern.quote(benchmark) + "$";
  }

  /** The benchmark methods (class.method) the patterns select, in JMH's order. */
  private static List<String> selection(List<String> includes, List<String> excludes) {
    Set<String> names = new LinkedHashSet<>();
    for (BenchmarkListEntry e : BenchmarkList.defaultList().find(silent(), includes, excludes)) {
      names.add(e.getUsername());
    }
    return new ArrayList<>(names);
  }

  private static org.openjdk.jmh.runner.format.OutputFormat silent() {
    return OutputFormatFactory.createFormatInstance(new PrintStream(PrintStream.nullOutputStream()), VerboseMode.SILENT);
  }

  /**
   * {@code includes} plus an exact pattern for the baseline of every selected gmem benchmark, so a
   * regex that picks only gmem methods still measures their baselines in the same run — and the
   * baselines' own baselines, where a baseline is paired too (a raw 4-vs-1 pair beside gmem's).
   */
  static List<String> withBaselines(List<String> includes, List<String> excludes) {
    List<String> all = new ArrayList<>(includes);
    List<String> added = includes;
    while (!added.isEmpty()) {
      List<String> next = new ArrayList<>();
      for (BenchmarkListEntry e : BenchmarkList.defaultList().find(silent(), added, excludes)) {
        for (Paired p : RatioTable.pairings(e.getUsername())) {
          String baseline = exact(RatioTable.className(e.getUsername()) + "." + p.baseline());
          if (!all.contains(baseline)) {
            all.add(baseline);
            next.add(baseline);
          }
        }
      }
      added = next;
    }
    return all;
  }

  /** Whether gmem's automatic backend choice is kvm here. */
  private static boolean kvmUsable() {
    try (GmemRuntime rt = GmemRuntime.create()) {
      return rt.backend().name().equals("kvm");
    } catch (RuntimeException e) {
      return false;
    }
  }

  /** {@code examples/target/jmh} when running from the built jar or classes, else {@code target/jmh}. */
  static Path resultDirectory() {
    try {
      CodeSource cs = BenchMain.class.getProtectionDomain().getCodeSource();
      if (cs != null && cs.getLocation() != null) {
        Path target = Path.of(cs.getLocation().toURI()).getParent();
        if (target != null && target.getFileName() != null && target.getFileName().toString().equals("target")) {
          return target.resolve("jmh");
        }
      }
    } catch (URISyntaxException | RuntimeException e) {
      // fall back to the working directory
    }
    return Path.of("target", "jmh");
  }
}
