package dev.gmem.arch.tdx;

/**
 * One SEAMCALL the modelled TDX module executed, for tests and VMMs that check the order of
 * operations (removal is BLOCK, TRACK, REMOVE, WBINVD, in that order).
 *
 * @param call   the leaf
 * @param gpa    the GPA operand (-1 for calls without one: TRACK, FINALIZE)
 * @param status the completion status ({@link TdxAbi#TDX_SUCCESS} or an error)
 */
public record SeamcallRecord(Seamcall call, long gpa, long status) {
  public boolean succeeded() {
    return status == TdxAbi.TDX_SUCCESS;
  }

  @Override
  public String toString() {
    return call + (gpa >= 0 ? String.format(" gpa=0x%x", gpa) : "") + (succeeded() ? "" : String.format(" -> 0x%016x", status));
  }
}
