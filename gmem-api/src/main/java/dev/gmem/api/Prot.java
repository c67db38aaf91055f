package dev.gmem.api;

/** {@code mmap(2)} protection and flag bits accepted by {@link GuestMemFile#map}. */
@Api(status = Api.Status.STABLE, since = "0.1")
public final class Prot {
  public static final int NONE = 0;
  public static final int READ = 1;
  public static final int WRITE = 2;
  public static final int EXEC = 4;
  public static final int READ_WRITE = READ | WRITE;

  public static final int MAP_SHARED = 0x01;
  public static final int MAP_PRIVATE = 0x02;
  public static final int MAP_SHARED_VALIDATE = 0x03;
  public static final int MAP_FIXED = 0x10;
  /** {@code MAP_FIXED_NOREPLACE}: at the address, or EEXIST where the range holds a mapping. */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  public static final int MAP_FIXED_NOREPLACE = 0x100000;
  public static final int MAP_LOCKED = 0x2000;
  public static final int MAP_POPULATE = 0x8000;
  public static final int MAP_HUGETLB = 0x40000;

  private Prot() {}
}
