package dev.gmem.arch.tdx.module;

import static dev.gmem.arch.tdx.TdxAbi.GPAW;
import static dev.gmem.arch.tdx.TdxAbi.MAP_GPA_MAX_LEN;
import static dev.gmem.arch.tdx.TdxAbi.SHARED_BIT;
import static dev.gmem.arch.tdx.TdxAbi.TDVMCALL_STATUS_ALIGN_ERROR;
import static dev.gmem.arch.tdx.TdxAbi.TDVMCALL_STATUS_INVALID_OPERAND;
import static dev.gmem.arch.tdx.TdxAbi.TDVMCALL_STATUS_RETRY;
import static dev.gmem.arch.tdx.TdxAbi.TDVMCALL_STATUS_SUCCESS;

import dev.gmem.api.GuestCall;
import dev.gmem.api.VcpuExit;
import java.util.function.BooleanSupplier;

/**
 * {@code TDG.VP.VMCALL<MapGPA>} as KVM handles it ({@code tdx_map_gpa},
 * {@code __tdx_map_gpa}, {@code tdx_complete_vmcall_map_gpa} in Linux
 * {@code arch/x86/kvm/vmx/tdx.c}): the range is checked (a wrapping or empty range, a GPA beyond
 * the TD's width, or one mixing shared and private GPAs: INVALID_OPERAND; then an unaligned GPA
 * or size: ALIGN_ERROR; r11 = the GPA either way), then handed to the VMM as
 * {@code KVM_HC_MAP_GPA_RANGE} exits of at most {@link dev.gmem.arch.tdx.TdxAbi#MAP_GPA_MAX_LEN}
 * from the GPA on (args: GPA without the shared bit, pages, ENCRYPTED for a private GPA). A
 * non-zero VMM answer ends the call with INVALID_OPERAND and r11 = the start of the chunk that
 * failed; an interrupt pending between chunks ends it with RETRY and r11 = the next GPA, for the
 * guest to call again from there; otherwise SUCCESS. r11 is the guest's own GPA (shared bit
 * included). The result's value is r10, its output 0 is r11.
 */
final class MapGpaCall implements GuestCall {
  private final long end;
  private final BooleanSupplier takeInterrupt;
  private long next;
  private Result result;

  private MapGpaCall(long gpa, long size, BooleanSupplier takeInterrupt) {
    this.next = gpa;
    this.end = gpa + size;
    this.takeInterrupt = takeInterrupt;
  }

  /**
   * The guest's call with r12 = {@code gpa}, r13 = {@code size}; {@code takeInterrupt} says
   * whether an interrupt is pending now and delivers it if so.
   */
  static GuestCall start(long gpa, long size, BooleanSupplier takeInterrupt) {
    if (gpa + size <= gpa || !legal(gpa) || !legal(gpa + size - 1) || isPrivate(gpa) != isPrivate(gpa + size - 1)) {
      return GuestCall.finished(new Result(TDVMCALL_STATUS_INVALID_OPERAND, new long[] {gpa}));
    }
    if ((gpa & 0xfff) != 0 || (size & 0xfff) != 0) {
      return GuestCall.finished(new Result(TDVMCALL_STATUS_ALIGN_ERROR, new long[] {gpa}));
    }
    return new MapGpaCall(gpa, size, takeInterrupt);
  }

  /** {@code kvm_vcpu_is_legal_gpa} for a TD of {@link dev.gmem.arch.tdx.TdxAbi#GPAW} bits (unsigned). */
  private static boolean legal(long gpa) {
    return (gpa >>> GPAW) == 0;
  }

  /** {@code vt_is_tdx_private_gpa}. */
  static boolean isPrivate(long gpa) {
    return (gpa & SHARED_BIT) == 0;
  }

  @Override
  public VcpuExit.Hypercall pendingExit() {
    if (result != null) {
      return null;
    }
    long size = Math.min(end - next, MAP_GPA_MAX_LEN);
    return VcpuExit.Hypercall.mapGpaRange(next & ~SHARED_BIT, size >>> 12,
        isPrivate(next) ? VcpuExit.Hypercall.ENCRYPTED : VcpuExit.Hypercall.DECRYPTED);
  }

  @Override
  public void complete(long ret) {
    if (result != null) {
      throw new IllegalStateException("no hypercall exit is pending");
    }
    if (ret != 0) {
      result = new Result(TDVMCALL_STATUS_INVALID_OPERAND, new long[] {next});
      return;
    }
    next += Math.min(end - next, MAP_GPA_MAX_LEN);
    if (next >= end) {
      result = new Result(TDVMCALL_STATUS_SUCCESS, new long[0]);
    } else if (takeInterrupt.getAsBoolean()) {
      result = new Result(TDVMCALL_STATUS_RETRY, new long[] {next});
    }
  }

  @Override
  public Result result() {
    if (result == null) {
      throw new IllegalStateException("the VMM has not completed " + pendingExit());
    }
    return result;
  }
}
