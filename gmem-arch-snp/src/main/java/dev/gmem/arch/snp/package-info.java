/**
 * AMD SEV-SNP for gmem's {@code VmType.SNP}: the arch plugin ({@link dev.gmem.arch.snp.SnpArchProvider}
 * → {@link dev.gmem.arch.snp.SnpArch}) with its firmware model ({@link dev.gmem.arch.snp.RmpEntry},
 * {@link dev.gmem.arch.snp.LaunchDigest}, {@link dev.gmem.arch.snp.PageType},
 * {@link dev.gmem.arch.snp.CpuidPolicy}), the guest's page-state-change protocols
 * ({@link dev.gmem.arch.snp.PageStateChange}) and the guest-side steps a test or demo issues through
 * gmem's software vCPU ({@link dev.gmem.arch.snp.SnpGuest}). What is real and what is modelled:
 * {@link dev.gmem.arch.snp.SnpArch}.
 */
package dev.gmem.arch.snp;
