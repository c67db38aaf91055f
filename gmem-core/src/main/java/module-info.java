/**
 * gmem's runtime. Nothing is API here: VMMs use {@code dev.gmem.api} and reach the runtime
 * through {@link dev.gmem.api.spi.RuntimeFactory}; plugins are found through the SPI services
 * below (and through {@code META-INF/services} on the class path). The examples module alone
 * sees the native layer and the host probe, for its raw-syscall benchmark baselines; the libc
 * binding alone is exported to all, for jnr-ffi's sake.
 */
@SuppressWarnings({
    "requires-automatic", // jnr-ffi, jffi and Dagger ship no module descriptor, only a module name
    "module" // the qualified exports name dev.gmem.examples, which is built after core
})
module dev.gmem.core {
  requires transitive dev.gmem.api;
  requires com.google.common;
  requires dagger;
  requires jakarta.inject;
  requires static java.compiler; // @Generated on Dagger's generated code (source retention)
  requires org.jnrproject.ffi;
  // jnr-ffi is an automatic module: it cannot say that it generates its bindings with ASM, so
  // core names ASM's modules for it, or a module-path launch would not resolve them.
  requires org.objectweb.asm;
  requires org.objectweb.asm.commons;
  requires org.objectweb.asm.util;
  requires org.jnrproject.jffi;
  requires org.slf4j;
  requires jdk.unsupported; // sun.misc.Unsafe as a constant for the accessors' loads (core.access.Direct)

  uses dev.gmem.api.spi.AllocatorProvider;
  uses dev.gmem.api.spi.ArchProvider;
  uses dev.gmem.api.spi.FeatureProvider;

  provides dev.gmem.api.spi.RuntimeFactory with dev.gmem.core.runtime.CoreRuntimeFactory;
  provides dev.gmem.api.spi.AllocatorProvider with dev.gmem.core.alloc.PageAllocatorProvider;
  provides dev.gmem.api.spi.ArchProvider with dev.gmem.core.arch.DefaultArchProvider;

  // jnr-ffi's generated LibC implementation lives in an unnamed module: the binding must be exported.
  exports dev.gmem.core.sys.libc;
  exports dev.gmem.core.sys to dev.gmem.examples;
  exports dev.gmem.core.host to dev.gmem.examples;
}
