package dev.gmem.examples.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The command line as the README shows it. */
class GmemToolTest {

  @Test
  void dashDBeforeTheCommandSetsAGmemProperty() {
    ToolRun run = ToolRun.of("-Dgmem.backend=memfd", "info");

    assertEquals(0, run.rc(), run.err());
    assertTrue(run.out().contains("  memfd: selected by gmem.backend=memfd"), run.out());
  }

  @Test
  void dashDAfterTheCommandStillWorks() {
    ToolRun run = ToolRun.of("info", "-Dgmem.backend=memfd");

    assertEquals(0, run.rc(), run.err());
    assertTrue(run.out().contains("  memfd: selected by gmem.backend=memfd"), run.out());
  }

  @Test
  void aConfigurationTypoIsOneMessageNamingWhatExistsNotAStackTrace() {
    ToolRun run = ToolRun.of("-Dgmem.alocator=hugetlb", "info");

    assertEquals(1, run.rc());
    assertEquals("gmem info: EINVAL: invalid gmem configuration: gmem.alocator=hugetlb is no gmem property (did you mean "
        + "gmem.allocator?); known: gmem.backend, gmem.allocator, gmem.arch.<VmType> and gmem.feature.<id>\n", run.err());
    assertFalse(run.out().contains("Plugins"), run.out());
    assertNull(System.getProperty("gmem.alocator"), "the run's -D is not left behind");
  }
}
