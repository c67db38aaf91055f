package dev.gmem.api;

import java.util.StringJoiner;

/**
 * guest_memfd creation flags, bit-compatible with {@code include/uapi/linux/kvm.h}
 * ({@code GUEST_MEMFD_FLAG_*}). Plugins may contribute further bits (see
 * {@link dev.gmem.api.spi.FeatureProvider#creationFlags()}); a VM accepts exactly the union of the
 * base set and what its present plugins contribute, as {@code KVM_CAP_GUEST_MEMFD_FLAGS} reports.
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public final class GmemFlags {

  /** {@code GUEST_MEMFD_FLAG_MMAP}: the file may be mmapped by the host. */
  public static final long MMAP = 1L;
  /** {@code GUEST_MEMFD_FLAG_INIT_SHARED}: every page starts SHARED (otherwise PRIVATE). */
  public static final long INIT_SHARED = 1L << 1;
  /** {@code GUEST_MEMFD_FLAG_NO_DIRECT_MAP} (proposed): folios leave the host direct map. */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.1")
  public static final long NO_DIRECT_MAP = 1L << 2;
  /**
   * {@code GUEST_MEMFD_FLAG_WRITE} (proposed; the value Firecracker's secret-hiding kernels use):
   * {@link GuestMemFile#write} may populate the file. Valid only where a plugin gives it meaning.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  public static final long WRITE = 1L << 3;

  /** Upstream guestmem_hugetlb encodes log2(page size) in bits 58..63 (mask 0x3f). */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.1")
  public static final int HUGE_PAGE_SHIFT = 58;
  /** Mask of the huge-page-size field, already shifted. */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.1")
  public static final long HUGE_PAGE_MASK = 0x3fL << HUGE_PAGE_SHIFT;

  /** The flags every gmem backend supports on a VM type without private memory. */
  public static final long BASE = MMAP | INIT_SHARED;

  private GmemFlags() {}

  /** Flag bits requesting huge pages of {@code 1 << log2PageSize} bytes. */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.1")
  public static long hugePageSize(int log2PageSize) {
    if (log2PageSize <= 0 || log2PageSize > 0x3f) {
      throw new IllegalArgumentException("log2 page size out of range: " + log2PageSize);
    }
    return ((long) log2PageSize) << HUGE_PAGE_SHIFT;
  }

  /** The log2 page size encoded in {@code flags}, or 0 when none is requested. */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.1")
  public static int hugePageLog2(long flags) {
    return (int) ((flags & HUGE_PAGE_MASK) >>> HUGE_PAGE_SHIFT);
  }

  /**
   * A readable rendering such as {@code MMAP|INIT_SHARED|HUGE_2MB|0x10}. The huge-page-size field
   * reads as the size it requests ({@code HUGE_4KB} … {@code HUGE_1GB}); a field with every bit set
   * reads {@code HUGE_PAGE_SIZE}: that is how a set of accepted flags
   * ({@link Vm#supportedGuestMemFlags()}, {@link HostInfo#guestMemfdFlags()}) says "any size", and
   * log2 63 is no page size.
   */
  public static String describe(long flags) {
    if (flags == 0) {
      return "0";
    }
    StringJoiner j = new StringJoiner("|");
    long rest = flags;
    if ((rest & MMAP) != 0) {
      j.add("MMAP");
      rest &= ~MMAP;
    }
    if ((rest & INIT_SHARED) != 0) {
      j.add("INIT_SHARED");
      rest &= ~INIT_SHARED;
    }
    if ((rest & NO_DIRECT_MAP) != 0) {
      j.add("NO_DIRECT_MAP");
      rest &= ~NO_DIRECT_MAP;
    }
    if ((rest & WRITE) != 0) {
      j.add("WRITE");
      rest &= ~WRITE;
    }
    int huge = hugePageLog2(rest);
    if (huge != 0) {
      j.add((rest & HUGE_PAGE_MASK) == HUGE_PAGE_MASK ? "HUGE_PAGE_SIZE" : "HUGE_" + size(huge));
      rest &= ~HUGE_PAGE_MASK;
    }
    if (rest != 0) {
      j.add("0x" + Long.toHexString(rest));
    }
    return j.toString();
  }

  /** {@code 2MB}, {@code 1GB}: {@code 1 << log2} bytes in the largest binary unit that divides it. */
  private static String size(int log2) {
    String[] units = {"B", "KB", "MB", "GB", "TB", "PB", "EB"};
    int unit = Math.min(log2 / 10, units.length - 1);
    return (1L << (log2 - 10 * unit)) + units[unit];
  }
}
