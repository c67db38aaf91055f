package dev.gmem.userfault;

import jdk.jfr.Category;
import jdk.jfr.Description;
import jdk.jfr.Label;
import jdk.jfr.Name;
import jdk.jfr.Timespan;

/** One resolved userfault, for JDK Flight Recorder. */
@Name("dev.gmem.userfault.ResolvedFault")
@Label("Resolved userfault")
@Category({"gmem", "userfault"})
@Description("A page fault on missing guest memory, from its first sight to its resolution")
final class ResolvedFaultEvent extends jdk.jfr.Event {
  @Label("Source")
  String source;

  @Label("Address")
  @Description("GPA for vCPU and async faults, host address for userfaultfd faults")
  long address;

  @Label("Latency")
  @Timespan(Timespan.NANOSECONDS)
  long latencyNanos;
}
