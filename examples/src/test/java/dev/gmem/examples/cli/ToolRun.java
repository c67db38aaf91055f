package dev.gmem.examples.cli;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.Properties;

/**
 * One run of the {@code gmem} command line in this JVM, with what it printed. System properties
 * that {@code -D} sets are put back afterwards, so runs do not leak into each other.
 */
record ToolRun(int rc, String out, String err) {

  static ToolRun of(String... args) {
    Properties saved = (Properties) System.getProperties().clone();
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    try {
      var cl = GmemTool.commandLine();
      cl.setOut(new PrintWriter(out, true));
      cl.setErr(new PrintWriter(err, true));
      int rc = cl.execute(args);
      return new ToolRun(rc, out.toString(), err.toString());
    } finally {
      System.setProperties(saved);
    }
  }
}
