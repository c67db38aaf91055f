package dev.gmem.api;

/** A software-vCPU access that exited instead of completing; carries the exit. */
@Api(status = Api.Status.STABLE, since = "0.1")
public final class MemoryExitException extends GmemException {
  private static final long serialVersionUID = 1L;

  private final transient VcpuExit exit;

  public MemoryExitException(VcpuExit exit) {
    super(Errno.EFAULT, "guest access exited");
    this.exit = exit;
  }

  /** The exit is formatted only when asked: a userfault exit is thrown once per demand fault. */
  @Override
  public String getMessage() {
    return super.getMessage() + ": " + exit;
  }

  public VcpuExit exit() {
    return exit;
  }

  /** Exceptions used as exits on a hot path need no stack trace. */
  @Override
  public synchronized Throwable fillInStackTrace() {
    return this;
  }
}
