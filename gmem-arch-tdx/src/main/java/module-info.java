/**
 * The TDX arch plugin: a model of the TDX module's page states and launch measurement with KVM's
 * TDX rules around guest_memfd. Depends on gmem's API only; exports its inspection API.
 */
module dev.gmem.arch.tdx {
  requires dev.gmem.api;

  exports dev.gmem.arch.tdx;

  provides dev.gmem.api.spi.ArchProvider with dev.gmem.arch.tdx.module.TdxArchProvider;
}
