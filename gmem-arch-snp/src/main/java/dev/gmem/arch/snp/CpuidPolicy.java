package dev.gmem.arch.snp;

import dev.gmem.api.Api;

/**
 * What the firmware accepts in a CPUID page ({@code SNP_LAUNCH_UPDATE} of type CPUID): for one
 * table entry (function {@code eaxIn}, sub-function {@code ecxIn}) and the values the VMM put there
 * ({@code eax, ebx, ecx, edx}), the values the firmware would accept. The real firmware compares
 * with what the platform supports; gmem has no SNP platform, so the model's default accepts
 * every value and a VMM or test installs the platform it wants checked
 * ({@link SnpArch#cpuidPolicy(CpuidPolicy)}).
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
@FunctionalInterface
public interface CpuidPolicy {
  /** Accepts every value. */
  CpuidPolicy ACCEPT_ALL = (eaxIn, ecxIn, regs) -> regs.clone();

  /** The accepted {@code {eax, ebx, ecx, edx}} for this entry; equal to {@code regs} when it passes. */
  int[] accepted(int eaxIn, int ecxIn, int[] regs);
}
