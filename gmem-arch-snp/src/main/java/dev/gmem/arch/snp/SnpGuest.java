package dev.gmem.arch.snp;

import dev.gmem.api.Api;
import dev.gmem.api.GuestCall;
import dev.gmem.api.MemoryExitException;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.VcpuExit;

/**
 * What an SNP guest kernel does around guest_memfd, issued through gmem's software vCPU: PVALIDATE
 * (with the nested page fault hardware takes when the page is not in place yet) and page state
 * change requests over the GHCB MSR protocol. (The PSC buffer protocol goes through
 * {@link SnpArch#pageStateChange}, since the buffer lives in the GHCB page the guest shares.)
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public final class SnpGuest {
  private SnpGuest() {}

  /**
   * PVALIDATE of the page (or 2 MiB page, {@code huge}) at {@code gpa}: {@link SnpArch#PVALIDATE_SUCCESS}
   * or a PVALIDATE failure code. A page without an RMP entry yet is first faulted in through
   * {@code cpu} as the instruction's nested page fault (KVM prepares it); if that fault exits
   * (the page is shared, or outside every memslot), the exit is thrown as
   * {@link MemoryExitException}, and so is the #VC of a double validation.
   */
  public static long pvalidate(SoftwareVcpu cpu, long gpa, boolean huge, boolean validate) {
    for (int attempt = 0; ; attempt++) {
      long rc = cpu.hypercall(SnpArch.PVALIDATE, gpa, huge ? 1 : 0, validate ? 1 : 0).result().value();
      if (rc != SnpArch.PVALIDATE_NESTED_FAULT || attempt > 0) {
        return rc;
      }
      VcpuExit exit = cpu.read(gpa, new byte[1], 0, 1, true);
      if (exit != null) {
        throw new MemoryExitException(exit);
      }
    }
  }

  /** PVALIDATE every 4 KiB page of {@code [gpa, gpa + size)}; stops at the first failure code and returns it. */
  public static long pvalidateRange(SoftwareVcpu cpu, long gpa, long size, boolean validate) {
    for (long a = gpa; a < gpa + size; a += 4096) {
      long rc = pvalidate(cpu, a, false, validate);
      if (rc != SnpArch.PVALIDATE_SUCCESS) {
        return rc;
      }
    }
    return SnpArch.PVALIDATE_SUCCESS;
  }

  /** A page state change of one 4 KiB page over the GHCB MSR protocol ({@link PageStateChange#OP_PRIVATE} or {@code OP_SHARED}). */
  public static GuestCall pageStateChangeMsr(SoftwareVcpu cpu, long gpa, int op) {
    return cpu.hypercall(SnpArch.VMGEXIT_MSR, PageStateChange.msrRequest(gpa >>> 12, op));
  }
}
