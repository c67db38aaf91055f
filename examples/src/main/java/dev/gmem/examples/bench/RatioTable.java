package dev.gmem.examples.bench;

import java.io.PrintWriter;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.StringJoiner;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.infra.BenchmarkParams;
import org.openjdk.jmh.results.BenchmarkResult;
import org.openjdk.jmh.results.IterationResult;
import org.openjdk.jmh.results.Result;
import org.openjdk.jmh.results.RunResult;

/**
 * Pairs each gmem result with its baseline result of the same run ({@link Paired}, same class, same
 * parameter values) and renders {@code gmem ns/op}, {@code baseline ns/op}, their ratio and the
 * verdict against the declared target.
 */
final class RatioTable {

  /** A gmem benchmark's own secondary result ({@code @AuxCounters}), e.g. bytes of metadata per page. */
  record Secondary(String family, String gmem, String params, String name, double score, String unit) {}

  /** One measured pair. */
  record Row(String family, String gmem, String baseline, String params, Score gmemScore, Score baselineScore, Paired spec) {
    double ratio() {
      return gmemScore.nanos / baselineScore.nanos;
    }

    private static String pct(double p) {
      return p <= 0 ? "mean" : String.format(Locale.ROOT, "%.0f", p);
    }

    boolean hasTarget() {
      return spec.maxRatio() > 0 || spec.maxNanos() > 0;
    }

    boolean pass() {
      return (spec.maxRatio() <= 0 || ratio() <= spec.maxRatio()) && (spec.maxNanos() <= 0 || gmemScore.nanos <= spec.maxNanos());
    }

    String target() {
      StringJoiner j = new StringJoiner(", ");
      if (spec.maxRatio() > 0) {
        j.add(String.format(Locale.ROOT, "ratio <= %.2f (thrpt >= %.2fx)", spec.maxRatio(), 1 / spec.maxRatio()));
      }
      if (spec.maxNanos() > 0) {
        j.add(String.format(Locale.ROOT, "<= %.0f ns/op", spec.maxNanos()));
      }
      if (spec.gmemPercentile() > 0 || spec.baselinePercentile() > 0) {
        j.add(String.format(Locale.ROOT, "p%s vs p%s", pct(spec.gmemPercentile()), pct(spec.baselinePercentile())));
      }
      return j.length() == 0 ? (spec.info().isEmpty() ? "-" : spec.info()) : j.toString();
    }

    String verdict() {
      return hasTarget() ? (pass() ? "PASS" : "MISS") : "info";
    }
  }

  /** A score in ns/op with its 99.9% confidence half-width. */
  record Score(double nanos, double error) {
    String render() {
      return Double.isNaN(error) ? fmt(nanos) : fmt(nanos) + " +- " + fmt(error);
    }

    private static String fmt(double v) {
      return String.format(Locale.ROOT, v >= 100 ? "%.0f" : v >= 10 ? "%.1f" : "%.2f", v);
    }
  }

  private final List<Row> rows;
  private final List<Secondary> secondaries;
  private final List<String> unpaired;

  private RatioTable(List<Row> rows, List<Secondary> secondaries, List<String> unpaired) {
    this.rows = rows;
    this.secondaries = secondaries;
    this.unpaired = unpaired;
  }

  /** Whether a selected gmem benchmark or its baseline produced no result. */
  boolean hasMissingResults() {
    return !unpaired.isEmpty();
  }

  /**
   * The pairs among {@code results}; {@code selected} (class.method names) are the benchmarks that
   * were asked for, so a gmem benchmark that produced no result (it failed) is reported too.
   */
  static RatioTable of(Collection<RunResult> results, Collection<String> selected) {
    List<Row> rows = new ArrayList<>();
    List<Secondary> secondaries = new ArrayList<>();
    List<String> unpaired = new ArrayList<>();
    for (String name : selected) {
      if (!pairings(name).isEmpty() && results.stream().noneMatch(r -> r.getParams().getBenchmark().equals(name))) {
        unpaired.add(name + ": no result (the benchmark failed; see its output above)");
      }
    }
    for (RunResult r : results) {
      BenchmarkParams p = r.getParams();
      List<Paired> specs = pairings(p.getBenchmark());
      if (specs.isEmpty()) {
        continue;
      }
      String cls = className(p.getBenchmark());
      String family = cls.substring(cls.lastIndexOf('.') + 1);
      for (Paired spec : specs) {
        RunResult base = find(results, cls + "." + spec.baseline(), p);
        if (base == null) {
          unpaired.add(p.getBenchmark() + " " + params(p) + ": baseline " + spec.baseline() + " has no result for these params");
          continue;
        }
        rows.add(new Row(family, methodName(p.getBenchmark()), spec.baseline(), params(p), score(r, spec.gmemPercentile()),
            score(base, spec.baselinePercentile()), spec));
      }
      r.getSecondaryResults().forEach((name, res) -> {
        if (!name.startsWith("\u00b7")) { // profilers' results (·gc.alloc.rate, ...) are JMH's to print
          secondaries.add(new Secondary(family, methodName(p.getBenchmark()), params(p), name, perIteration(r, name), res.getScoreUnit()));
        }
      });
    }
    return new RatioTable(rows, secondaries, unpaired);
  }

  /** The {@link Paired} declarations of benchmark method {@code fqn} (class.method); empty if none. */
  static List<Paired> pairings(String fqn) {
    try {
      Class<?> c = Class.forName(className(fqn));
      for (Method m : c.getMethods()) {
        Paired[] specs = m.getAnnotationsByType(Paired.class);
        if (m.getName().equals(methodName(fqn)) && specs.length > 0) {
          return List.of(specs);
        }
      }
      return List.of();
    } catch (ClassNotFoundException e) {
      return List.of();
    }
  }

  static String className(String fqn) {
    return fqn.substring(0, fqn.lastIndexOf('.'));
  }

  static String methodName(String fqn) {
    return fqn.substring(fqn.lastIndexOf('.') + 1);
  }

  /** The baseline result: same benchmark name, thread count and value of every parameter the baseline has. */
  private static RunResult find(Collection<RunResult> results, String benchmark, BenchmarkParams like) {
    for (RunResult r : results) {
      BenchmarkParams p = r.getParams();
      if (!p.getBenchmark().equals(benchmark) || p.getMode() != like.getMode() || p.getThreads() != like.getThreads()) {
        continue;
      }
      boolean same = true;
      for (String k : p.getParamsKeys()) {
        same &= p.getParam(k).equals(like.getParam(k));
      }
      if (same) {
        return r;
      }
    }
    return null;
  }

  private static String params(BenchmarkParams p) {
    StringJoiner j = new StringJoiner(",");
    if (p.getThreads() > 1) {
      j.add("threads=" + p.getThreads());
    }
    for (String k : p.getParamsKeys()) {
      j.add(k + "=" + p.getParam(k));
    }
    return j.toString();
  }

  /**
   * The mean per measurement iteration of secondary result {@code name} over every fork: the
   * value an {@code @AuxCounters(EVENTS)} gauge (bytes per page, say) was set to, where JMH's own
   * summary adds the iterations up.
   */
  static double perIteration(RunResult r, String name) {
    double sum = 0;
    int n = 0;
    for (BenchmarkResult b : r.getBenchmarkResults()) {
      for (IterationResult i : b.getIterationResults()) {
        Result<?> res = i.getSecondaryResults().get(name);
        if (res != null) {
          sum += res.getScore();
          n++;
        }
      }
    }
    return n == 0 ? Double.NaN : sum / n;
  }

  /**
   * The {@code percentile} (0 < p ≤ 100) of a sampled run's latencies as ns/op (no error interval),
   * or the primary score where {@code percentile} is 0 or the run sampled nothing.
   */
  static Score score(RunResult r, double percentile) {
    if (percentile <= 0 || r.getParams().getMode() != Mode.SampleTime) {
      return score(r);
    }
    double unitNanos = TimeUnit.NANOSECONDS.convert(1, r.getParams().getTimeUnit());
    return new Score(r.getPrimaryResult().getStatistics().getPercentile(percentile) * unitNanos, Double.NaN);
  }

  /** The primary score as ns/op, whatever mode and time unit the run used. */
  static Score score(RunResult r) {
    Result<?> res = r.getPrimaryResult();
    double unitNanos = TimeUnit.NANOSECONDS.convert(1, r.getParams().getTimeUnit());
    double score = res.getScore();
    double error = res.getScoreError();
    if (r.getParams().getMode() == Mode.Throughput) {
      // ops per unit → ns per op; the error interval maps through 1/x around the score.
      double nanos = unitNanos / score;
      double err = Double.isNaN(error) ? Double.NaN : nanos * error / score;
      return new Score(nanos, err);
    }
    return new Score(score * unitNanos, error * unitNanos);
  }

  void print(PrintWriter out) {
    out.println();
    out.println("gmem vs baseline, same run (ns/op; ratio = gmem ns/op / baseline ns/op, lower is better)");
    String[] head = {"family", "gmem benchmark", "baseline", "params", "gmem ns/op", "baseline ns/op", "ratio", "target", "verdict"};
    List<String[]> lines = new ArrayList<>();
    lines.add(head);
    for (Row r : rows) {
      lines.add(new String[] {
        r.family(), r.gmem(), r.baseline(), r.params(), r.gmemScore().render(), r.baselineScore().render(),
        String.format(Locale.ROOT, "%.2f", r.ratio()), r.target(), r.verdict()
      });
    }
    int[] w = new int[head.length];
    for (String[] l : lines) {
      for (int i = 0; i < l.length; i++) {
        w[i] = Math.max(w[i], l[i].length());
      }
    }
    for (int n = 0; n < lines.size(); n++) {
      String[] l = lines.get(n);
      StringBuilder sb = new StringBuilder();
      for (int i = 0; i < l.length; i++) {
        boolean numeric = i >= 4 && i <= 6;
        String cell = numeric && n > 0 ? " ".repeat(w[i] - l[i].length()) + l[i] : l[i] + " ".repeat(w[i] - l[i].length());
        sb.append(cell).append(i + 1 < l.length ? "  " : "");
      }
      out.println(sb.toString().stripTrailing());
    }
    if (rows.isEmpty()) {
      out.println("(no gmem benchmark ran together with its baseline)");
    }
    if (!secondaries.isEmpty()) {
      out.println();
      out.println("gmem secondary results (mean per iteration)");
    }
    for (Secondary sec : secondaries) {
      out.printf(Locale.ROOT, "%s  %s  %s: %s = %.4f %s%n", sec.family(), sec.gmem(), sec.params(), sec.name(), sec.score(), sec.unit());
    }
    for (String u : unpaired) {
      out.println("unpaired: " + u);
    }
    out.flush();
  }
}
