package dev.gmem.migrate;

import jdk.jfr.Category;
import jdk.jfr.DataAmount;
import jdk.jfr.Label;
import jdk.jfr.Name;
import jdk.jfr.Timespan;

/** JFR events of a migration: one per finished migration (either side), one per demand page, one per recovered link. */
final class MigrationEvent {
  private MigrationEvent() {}

  @Name("dev.gmem.migrate.Migration")
  @Label("Migration")
  @Category({"gmem", "migrate"})
  static final class Finished extends jdk.jfr.Event {
    @Label("Side")
    String side;
    @Label("Pages")
    long pages;
    @Label("Downtime")
    @Timespan(Timespan.NANOSECONDS)
    long downtime;
    @Label("Demand requests")
    long demandRequests;
    @Label("Stream bytes")
    @DataAmount
    long streamBytes;
    @Label("Demand bytes")
    @DataAmount
    long demandBytes;
    @Label("Reconnects")
    int reconnects;
    @Label("Outcome")
    String outcome;

    /** Records the end of one side's migration (nothing when the event is off). */
    static void commit(String side, String outcome, MigrationStats st) {
      Finished e = new Finished();
      if (e.isEnabled()) {
        e.side = side;
        e.pages = st.pages();
        e.downtime = st.downtime().toNanos();
        e.demandRequests = st.demandRequests();
        e.streamBytes = st.streamBytes();
        e.demandBytes = st.demandBytes();
        e.reconnects = st.reconnects();
        e.outcome = outcome;
        e.commit();
      }
    }
  }

  @Name("dev.gmem.migrate.DemandPage")
  @Label("Demand page")
  @Category({"gmem", "migrate"})
  static final class DemandPage extends jdk.jfr.Event {
    @Label("GFN")
    long gfn;
    @Label("Round trip")
    @Timespan(Timespan.NANOSECONDS)
    long roundTrip;
  }

  @Name("dev.gmem.migrate.LinkRecovered")
  @Label("Link recovered")
  @Category({"gmem", "migrate"})
  static final class LinkRecovered extends jdk.jfr.Event {
    @Label("Cause")
    String cause;
    @Label("Pages still missing")
    long missing;
  }
}
