/**
 * Post-copy live migration of a gmem VM between two processes over TCP, on the userfault
 * feature's page server. Depends on gmem's API and the userfault plugin only.
 */
module dev.gmem.migrate {
  requires transitive dev.gmem.api;
  requires transitive dev.gmem.userfault;
  requires jdk.jfr;

  exports dev.gmem.migrate;
  exports dev.gmem.migrate.wire;
}
