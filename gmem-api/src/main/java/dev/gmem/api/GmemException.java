package dev.gmem.api;

import java.util.OptionalLong;

/**
 * A failed gmem call, carrying the errno the kernel returns for the same call and, where the
 * kernel reports one (conversion: {@code error_offset}), the offending file offset.
 *
 * <p>A call that throws changed nothing: no partial state is left behind.
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public class GmemException extends RuntimeException {

  private static final long serialVersionUID = 1L;
  private static final long NO_OFFSET = -1L;

  private final Errno errno;
  private final int rawErrno;
  private final long errorOffset;

  public GmemException(Errno errno, String message) {
    this(errno, errno.code(), message, NO_OFFSET, null);
  }

  public GmemException(Errno errno, String message, Throwable cause) {
    this(errno, errno.code(), message, NO_OFFSET, cause);
  }

  protected GmemException(Errno errno, int rawErrno, String message, long errorOffset, Throwable cause) {
    super(errno.name() + ": " + message + (errorOffset >= 0 ? " (error offset 0x" + Long.toHexString(errorOffset) + ")" : ""), cause);
    this.errno = errno;
    this.rawErrno = rawErrno;
    this.errorOffset = errorOffset;
  }

  /** An error that points at a file offset (EAGAIN/ENOMEM from a conversion, as {@code error_offset}). */
  public static GmemException atOffset(Errno errno, long errorOffset, String message) {
    if (errorOffset < 0) {
      throw new IllegalArgumentException("error offset must be >= 0: " + errorOffset);
    }
    return new GmemException(errno, errno.code(), message, errorOffset, null);
  }

  /** An error from a raw syscall, keeping the exact number even when gmem has no name for it. */
  public static GmemException fromSyscall(int rawErrno, String call) {
    Errno e = Errno.of(rawErrno);
    String text = e == Errno.UNKNOWN ? "errno " + rawErrno : e.description();
    return new GmemException(e, rawErrno, call + " failed: " + text, NO_OFFSET, null);
  }

  public static GmemException einval(String message) {
    return new GmemException(Errno.EINVAL, message);
  }

  public Errno errno() {
    return errno;
  }

  /** The errno number as the kernel reported it (equal to {@code errno().code()} unless UNKNOWN). */
  public int rawErrno() {
    return rawErrno;
  }

  /** The offending file offset, when the failing operation reports one. */
  public OptionalLong errorOffset() {
    return errorOffset >= 0 ? OptionalLong.of(errorOffset) : OptionalLong.empty();
  }
}
