package dev.gmem.examples.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The tool on the module path, with nothing on the class path: the module descriptors must be
 * complete ({@code requires} of every library, {@code uses}/{@code provides} of every SPI) for
 * {@code java -m} to start it, and service binding must bring in core's runtime and the hugetlb
 * allocator plugin, which no module requires. The other tests run on the class path.
 */
class ModulePathLaunchTest {
  private static final String MAIN = "dev.gmem.examples/dev.gmem.examples.cli.GmemTool";

  @TempDir Path dir;

  @Test
  void gmemInfoStartsOnTheModulePathAndListsTheCoreRuntimeAndTheHugetlbPlugin() throws Exception {
    Path base = Path.of(System.getProperty("basedir", "."));
    // Written by maven-dependency-plugin:build-classpath (examples/pom.xml): the runtime jars.
    String runtime = Files.readString(base.resolve("target/runtime-classpath.txt")).trim();
    String modulePath = base.resolve("target/classes") + File.pathSeparator + runtime;
    Path out = dir.resolve("out.txt");
    Path err = dir.resolve("err.txt");
    ProcessBuilder pb = new ProcessBuilder(
        Path.of(System.getProperty("java.home"), "bin", "java").toString(), "--module-path", modulePath, "-m", MAIN, "info")
        .redirectOutput(out.toFile())
        .redirectError(err.toFile());
    pb.environment().remove("CLASSPATH");
    Process p = pb.start();
    assertTrue(p.waitFor(120, TimeUnit.SECONDS), "gmem info did not finish");
    String stdout = Files.readString(out, StandardCharsets.UTF_8);
    String report = stdout + "\n--- stderr ---\n" + Files.readString(err, StandardCharsets.UTF_8);
    assertEquals(0, p.exitValue(), report);

    List<String> lines = stdout.lines().toList();
    assertTrue(lines.contains("Backend"), report);
    assertTrue(lines.stream().anyMatch(l -> l.startsWith("  arch      default ") && l.contains("gmem-core")), report);
    assertTrue(lines.stream().anyMatch(l -> l.startsWith("  allocator page ") && l.contains("gmem-core")), report);
    assertTrue(lines.stream().anyMatch(l -> l.startsWith("  allocator hugetlb ") && l.contains("gmem-alloc-hugetlb")), report);
    assertTrue(lines.stream().filter(l -> l.startsWith("  allocator ") || l.startsWith("  arch ")).noneMatch(l -> l.contains("unversioned")),
        "on the module path a plugin's version is its module's: " + report);
  }
}
