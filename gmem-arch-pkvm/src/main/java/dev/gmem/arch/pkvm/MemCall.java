package dev.gmem.arch.pkvm;

import dev.gmem.api.GuestCall;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.spi.GmemPage;

/**
 * One guest MEM_SHARE / MEM_UNSHARE / MEM_RELINQUISH the hypervisor accepted: it exits once to
 * the VMM, which updates gmem (converts, or frees the relinquished page) and completes it; then
 * the hypervisor decides what the guest reads.
 */
final class MemCall implements GuestCall {
  private final PkvmHypervisor hyp;
  private final VcpuExit.Hypercall exit;
  /** The page at the IPA, or null for a share of an IPA the guest never touched. */
  private final GmemPage page;
  /** The exit's x1, kept here: {@code exit.args()} hands out a copy. */
  private final long ipa;
  private Result result;

  MemCall(PkvmHypervisor hyp, long nr, long ipa, GmemPage page) {
    this.hyp = hyp;
    this.exit = new VcpuExit.Hypercall(nr, new long[] {ipa, 0, 0}, 0);
    this.page = page;
    this.ipa = ipa;
  }

  @Override
  public VcpuExit.Hypercall pendingExit() {
    return result == null ? exit : null;
  }

  @Override
  public void complete(long ret) {
    if (result != null) {
      throw new IllegalStateException("no hypercall exit is pending");
    }
    result = new Result(hyp.complete(exit.nr(), ipa, page, ret));
  }

  @Override
  public Result result() {
    if (result == null) {
      throw new IllegalStateException("the VMM has not completed " + PkvmHypercalls.name(exit.nr()));
    }
    return result;
  }
}
