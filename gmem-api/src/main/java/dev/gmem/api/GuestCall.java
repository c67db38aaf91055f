package dev.gmem.api;

import java.util.Arrays;

/**
 * A hypercall the guest issued ({@code VMCALL}, {@code TDG.VP.VMCALL}, an SNP page-state change,
 * a pKVM {@code HVC}), as a small exchange with the VMM: the call may need zero or more
 * {@link VcpuExit.Hypercall} exits, each completed by the VMM with a return value (what it writes
 * to {@code kvm_run.hypercall.ret}), before the guest sees its result. TDX MapGPA, for example,
 * exits once per 2 MiB chunk and stops early on a non-zero return.
 *
 * <pre>{@code
 * GuestCall call = vm.softwareVcpu().hypercall(VcpuExit.Hypercall.MAP_GPA_RANGE, gpa, npages, DECRYPTED);
 * for (VcpuExit.Hypercall exit; (exit = call.pendingExit()) != null; ) {
 *   file.setShareability(..., Shareability.SHARED);   // the VMM's part
 *   call.complete(0);
 * }
 * long status = call.result().value();                 // what the guest sees
 * }</pre>
 *
 * <p>One thread drives a call, as one vCPU thread runs a vCPU. Arch plugins implement it for the
 * hypercalls they define ({@link dev.gmem.api.spi.ArchHooks#guestCall}); {@link #exits} and
 * {@link #finished} cover the common shapes.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public interface GuestCall {

  /** The exit the VMM must complete next, or null once the call has finished. */
  VcpuExit.Hypercall pendingExit();

  /**
   * The VMM's answer to {@link #pendingExit()}, as {@code kvm_run.hypercall.ret}.
   *
   * @throws IllegalStateException when no exit is pending
   */
  void complete(long ret);

  /**
   * What the guest sees once the call has finished.
   *
   * @throws IllegalStateException while an exit is pending
   */
  Result result();

  /**
   * The guest-visible outcome: the value the guest reads back (x86 KVM hypercalls: {@code rax};
   * TDX: the TDVMCALL status in {@code r10}) and any further output registers, in the arch's
   * order (TDX MapGPA: {@code r11}, the GPA to resume at or that failed).
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  record Result(long value, long[] outputs) {
    public Result {
      outputs = outputs.clone();
    }

    public Result(long value) {
      this(value, new long[0]);
    }

    @Override
    public long[] outputs() {
      return outputs.clone();
    }

    /** Output register {@code i}, 0 when the arch supplied fewer. */
    public long output(int i) {
      return i < outputs.length ? outputs[i] : 0;
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof Result r && r.value == value && Arrays.equals(r.outputs, outputs);
    }

    @Override
    public int hashCode() {
      return Long.hashCode(value) * 31 + Arrays.hashCode(outputs);
    }

    @Override
    public String toString() {
      return "Result[value=" + value + (outputs.length == 0 ? "" : " outputs=" + Arrays.toString(outputs)) + "]";
    }
  }

  /** A call that needed no exit (handled by the arch alone, or refused). */
  static GuestCall finished(Result result) {
    return new GuestCalls.Finished(result);
  }

  /**
   * A call that exits once with {@code exit} and then returns the VMM's value to the guest, as
   * KVM's {@code complete_hypercall_exit} puts {@code hypercall.ret} into {@code rax}.
   */
  static GuestCall exits(VcpuExit.Hypercall exit) {
    return new GuestCalls.SingleExit(exit);
  }
}
