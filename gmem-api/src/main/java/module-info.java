/**
 * gmem's public API ({@code dev.gmem.api}) and plugin SPI ({@code dev.gmem.api.spi}): value types
 * and interfaces only, no implementation libraries. {@link dev.gmem.api.GmemRuntime.Builder#build()}
 * finds the runtime (gmem-core) through {@link dev.gmem.api.spi.RuntimeFactory}.
 */
module dev.gmem.api {
  exports dev.gmem.api;
  exports dev.gmem.api.spi;

  uses dev.gmem.api.spi.RuntimeFactory;
}
