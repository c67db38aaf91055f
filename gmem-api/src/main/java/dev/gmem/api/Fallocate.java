package dev.gmem.api;

/** {@code fallocate(2)} mode bits ({@code include/uapi/linux/falloc.h}) accepted by {@link GuestMemFile#fallocate}. */
@Api(status = Api.Status.STABLE, since = "0.1")
public final class Fallocate {
  public static final int KEEP_SIZE = 0x01;
  public static final int PUNCH_HOLE = 0x02;
  public static final int NO_HIDE_STALE = 0x04;
  public static final int COLLAPSE_RANGE = 0x08;
  public static final int ZERO_RANGE = 0x10;
  public static final int INSERT_RANGE = 0x20;
  public static final int UNSHARE_RANGE = 0x40;
  public static final int WRITE_ZEROES = 0x80;

  private Fallocate() {}
}
