package dev.gmem.examples.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.Properties;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** The command line as the README shows it. */
class GmemToolTest {

  private Properties saved;
  private final StringWriter out = new StringWriter();
  private final StringWriter err = new StringWriter();

  @BeforeEach
  void saveSystemProperties() {
    saved = (Properties) System.getProperties().clone();
  }

  @AfterEach
  void restoreSystemProperties() {
    System.setProperties(saved);
  }

  @Test
  void dashDBeforeTheCommandSetsAGmemProperty() {
    int rc = run("-Dgmem.backend=memfd", "info");

    assertEquals(0, rc, err.toString());
    assertTrue(out.toString().contains("  memfd: selected by gmem.backend=memfd"), out.toString());
  }

  @Test
  void dashDAfterTheCommandStillWorks() {
    int rc = run("info", "-Dgmem.backend=memfd");

    assertEquals(0, rc, err.toString());
    assertTrue(out.toString().contains("  memfd: selected by gmem.backend=memfd"), out.toString());
  }

  @Test
  void aConfigurationTypoIsOneMessageNamingWhatExistsNotAStackTrace() {
    int rc = run("-Dgmem.alocator=hugetlb", "info");

    assertEquals(1, rc);
    assertEquals("gmem info: EINVAL: invalid gmem configuration: gmem.alocator=hugetlb is no gmem property (did you mean "
        + "gmem.allocator?); known: gmem.backend, gmem.allocator, gmem.arch.<VmType> and gmem.feature.<id>\n", err.toString());
    assertFalse(out.toString().contains("Plugins"), out.toString());
  }

  private int run(String... args) {
    CommandLine cl = GmemTool.commandLine();
    cl.setOut(new PrintWriter(out, true));
    cl.setErr(new PrintWriter(err, true));
    return cl.execute(args);
  }
}
