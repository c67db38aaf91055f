/**
 * The userfault feature plugin: KVM Userfault memslots, the userfaultfd engine, page sources.
 * Depends on gmem's API only (and binds its own syscalls).
 */
@SuppressWarnings("requires-automatic") // jnr-ffi ships only a module name
module dev.gmem.userfault {
  requires transitive dev.gmem.api;
  requires org.jnrproject.ffi;
  requires jdk.jfr;

  exports dev.gmem.userfault;
  exports dev.gmem.userfault.source;
  exports dev.gmem.userfault.snapshot;
  exports dev.gmem.userfault.uffd;
  // jnr-ffi's generated binding lives in an unnamed module: the interface must be exported.
  exports dev.gmem.userfault.uffd.libc;

  provides dev.gmem.api.spi.FeatureProvider with dev.gmem.userfault.UserfaultProvider;
}
