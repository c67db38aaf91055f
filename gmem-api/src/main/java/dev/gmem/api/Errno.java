package dev.gmem.api;

/**
 * The Linux errno values gmem reports. gmem returns the errno the kernel returns for the same
 * call, so a VMM can treat gmem and a future kernel implementation alike.
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public enum Errno {
  EPERM(1, "Operation not permitted"),
  ENOENT(2, "No such file or directory"),
  EINTR(4, "Interrupted system call"),
  EIO(5, "Input/output error"),
  ENXIO(6, "No such device or address"),
  EBADF(9, "Bad file descriptor"),
  EAGAIN(11, "Resource temporarily unavailable"),
  ENOMEM(12, "Cannot allocate memory"),
  EACCES(13, "Permission denied"),
  EFAULT(14, "Bad address"),
  EBUSY(16, "Device or resource busy"),
  EEXIST(17, "File exists"),
  ENODEV(19, "No such device"),
  EINVAL(22, "Invalid argument"),
  EMFILE(24, "Too many open files"),
  ENOTTY(25, "Inappropriate ioctl for device"),
  EFBIG(27, "File too large"),
  ENOSPC(28, "No space left on device"),
  ESPIPE(29, "Illegal seek"),
  E2BIG(7, "Argument list too long"),
  ERANGE(34, "Numerical result out of range"),
  ENOSYS(38, "Function not implemented"),
  EOVERFLOW(75, "Value too large for defined data type"),
  EOPNOTSUPP(95, "Operation not supported"),
  EHWPOISON(133, "Memory page has hardware error"),
  /** An errno gmem has no name for; {@link GmemException#rawErrno()} keeps the number. */
  UNKNOWN(-1, "Unknown error");

  private static final Errno[] BY_CODE = new Errno[134];

  static {
    for (Errno e : values()) {
      if (e.code > 0) {
        BY_CODE[e.code] = e;
      }
    }
  }

  private final int code;
  private final String description;

  Errno(int code, String description) {
    this.code = code;
    this.description = description;
  }

  /** The x86_64 Linux errno number. */
  public int code() {
    return code;
  }

  /** The strerror text. */
  public String description() {
    return description;
  }

  /** Maps a kernel errno number; numbers gmem does not name map to {@link #UNKNOWN}. */
  public static Errno of(int code) {
    if (code > 0 && code < BY_CODE.length && BY_CODE[code] != null) {
      return BY_CODE[code];
    }
    return UNKNOWN;
  }
}
