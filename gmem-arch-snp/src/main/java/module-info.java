/**
 * The AMD SEV-SNP arch plugin for {@code VmType.SNP}: depends on gmem's API only. Exports its
 * package so that a VMM reaches the firmware model ({@code vm.arch(SnpArch.class)}) and the
 * guest-side helpers.
 */
module dev.gmem.arch.snp {
  requires dev.gmem.api;

  exports dev.gmem.arch.snp;

  provides dev.gmem.api.spi.ArchProvider with dev.gmem.arch.snp.SnpArchProvider;
}
