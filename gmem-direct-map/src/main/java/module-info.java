/** The direct-map removal feature: depends on gmem's API only; exports its inspection API. */
module dev.gmem.directmap {
  requires dev.gmem.api;

  exports dev.gmem.directmap;

  provides dev.gmem.api.spi.FeatureProvider with dev.gmem.directmap.DirectMapProvider;
}
