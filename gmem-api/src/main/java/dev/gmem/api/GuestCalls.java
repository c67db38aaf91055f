package dev.gmem.api;

/** The two common {@link GuestCall} shapes; package-private behind the interface's factories. */
final class GuestCalls {
  private GuestCalls() {}

  static final class Finished implements GuestCall {
    private final GuestCall.Result result;

    Finished(GuestCall.Result result) {
      this.result = java.util.Objects.requireNonNull(result, "result");
    }

    @Override
    public VcpuExit.Hypercall pendingExit() {
      return null;
    }

    @Override
    public void complete(long ret) {
      throw new IllegalStateException("no hypercall exit is pending");
    }

    @Override
    public GuestCall.Result result() {
      return result;
    }
  }

  static final class SingleExit implements GuestCall {
    private final VcpuExit.Hypercall exit;
    private GuestCall.Result result;

    SingleExit(VcpuExit.Hypercall exit) {
      this.exit = java.util.Objects.requireNonNull(exit, "exit");
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
      result = new GuestCall.Result(ret);
    }

    @Override
    public GuestCall.Result result() {
      if (result == null) {
        throw new IllegalStateException("the VMM has not completed " + exit);
      }
      return result;
    }
  }
}
