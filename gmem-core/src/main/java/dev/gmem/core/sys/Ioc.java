package dev.gmem.core.sys;

/** The kernel's {@code _IOC} encoding ({@code include/uapi/asm-generic/ioctl.h}), so ioctl numbers are derived, not copied. */
public final class Ioc {
  public static final int NONE = 0;
  public static final int WRITE = 1;
  public static final int READ = 2;

  private static final int NRSHIFT = 0;
  private static final int TYPESHIFT = 8;
  private static final int SIZESHIFT = 16;
  private static final int DIRSHIFT = 30;
  private static final int SIZEMASK = (1 << 14) - 1;

  private Ioc() {}

  public static long ioc(int dir, int type, int nr, int size) {
    if (size < 0 || size > SIZEMASK) {
      throw new IllegalArgumentException("ioctl size out of range: " + size);
    }
    return (((long) dir) << DIRSHIFT) | ((long) type << TYPESHIFT) | ((long) nr << NRSHIFT) | ((long) size << SIZESHIFT);
  }

  public static long io(int type, int nr) {
    return ioc(NONE, type, nr, 0);
  }

  public static long ior(int type, int nr, int size) {
    return ioc(READ, type, nr, size);
  }

  public static long iow(int type, int nr, int size) {
    return ioc(WRITE, type, nr, size);
  }

  public static long iowr(int type, int nr, int size) {
    return ioc(READ | WRITE, type, nr, size);
  }

  /** The argument size encoded in an ioctl number. */
  public static int sizeOf(long request) {
    return (int) ((request >>> SIZESHIFT) & SIZEMASK);
  }

}
