/**
 * The pKVM arch plugin: depends on gmem's API only. Exports its inspection API
 * ({@link dev.gmem.arch.pkvm.PkvmHypervisor} through {@code Vm.arch}) and the hypercall numbers.
 */
module dev.gmem.arch.pkvm {
  requires dev.gmem.api;

  exports dev.gmem.arch.pkvm;

  provides dev.gmem.api.spi.ArchProvider with dev.gmem.arch.pkvm.PkvmArchProvider;
}
