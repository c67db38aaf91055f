package dev.gmem.api;

/**
 * {@code mmap(2)} flag bits ({@code MAP_*}) accepted by {@link GuestMemFile#map}; the protection
 * bits are in {@link Prot}. Values are the kernel's (x86-64 uapi).
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public final class MapFlags {
  /** {@code MAP_SHARED}: the only sharing type a guest_memfd accepts. */
  public static final int SHARED = 0x01;
  /** {@code MAP_PRIVATE}: copy-on-write, refused by guest_memfd (EINVAL). */
  public static final int PRIVATE = 0x02;
  /** {@code MAP_SHARED_VALIDATE}: MAP_SHARED that refuses flags the file does not know (EOPNOTSUPP). */
  public static final int SHARED_VALIDATE = 0x03;
  /** {@code MAP_FIXED}: exactly at the address given, replacing what the range held. */
  public static final int FIXED = 0x10;
  /** {@code MAP_FIXED_NOREPLACE}: exactly at the address given, or EEXIST where the range holds a mapping. */
  public static final int FIXED_NOREPLACE = 0x100000;
  /** {@code MAP_LOCKED}. */
  public static final int LOCKED = 0x2000;
  /** {@code MAP_POPULATE}: fault host-faultable pages in at map time. */
  public static final int POPULATE = 0x8000;
  /** {@code MAP_NONBLOCK}: with MAP_POPULATE, populate nothing. */
  public static final int NONBLOCK = 0x10000;
  /** {@code MAP_HUGETLB}: not valid for a file mapping (EINVAL). */
  public static final int HUGETLB = 0x40000;

  private MapFlags() {}
}
