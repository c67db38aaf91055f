package dev.gmem.core.mapping;

import dev.gmem.api.Errno;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.MapFlags;
import dev.gmem.api.Prot;
import dev.gmem.core.sys.Sys;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Where a host mapping goes, settled before anything else is checked or mapped. The kernel answers
 * the address-space part of {@code mmap(2)} ({@code get_unmapped_area}: ENOMEM for a length or
 * range beyond the address space, EINVAL for an unaligned MAP_FIXED address, EEXIST where
 * MAP_FIXED_NOREPLACE meets a mapping) before it looks at the file, so gmem asks it first, with an
 * inaccessible anonymous reservation of the range, and maps into that reservation once the file's
 * checks passed. A failed call gives the reservation back and so changes nothing; MAP_FIXED over
 * the caller's own memory reserves nothing and replaces that memory only when the mapping is made.
 */
public final class Placement {
  private static final int RESERVE = MapFlags.PRIVATE | Sys.MAP_ANONYMOUS | Sys.MAP_NORESERVE;
  /** {@code vm.mmap_min_addr}; below it the JVM relies on faults (implicit null checks). */
  private static final long MIN_ADDRESS = minAddress();

  private final Sys sys;
  private final long address;
  private final long length;
  private final boolean reserved;

  private Placement(Sys sys, long address, long length, boolean reserved) {
    this.sys = sys;
    this.address = address;
    this.length = length;
    this.reserved = reserved;
  }

  /**
   * Reserves where a mapping of {@code length} bytes goes: at {@code address} exactly for
   * MAP_FIXED / MAP_FIXED_NOREPLACE, else where the kernel places it with {@code address} as a
   * hint. {@code align} (a power of two, at least a page) is the block size of huge-page memory:
   * the region is aligned to it and a fixed address must be (hugetlbfs's EINVAL).
   *
   * <p>Unlike the kernel for a process with CAP_SYS_RAWIO, a fixed address below
   * {@code vm.mmap_min_addr} is refused with EPERM (what every other process gets): a mapping at
   * page 0 would silently break the JVM's null checks.
   */
  public static Placement reserve(Sys sys, long address, long length, int mapFlags, long align) {
    boolean noReplace = (mapFlags & MapFlags.FIXED_NOREPLACE) != 0;
    if (!noReplace && (mapFlags & MapFlags.FIXED) == 0) {
      if (align == Folio.PAGE_SIZE) {
        return new Placement(sys, sys.mmap(address, length, Prot.NONE, RESERVE, -1, 0), length, true);
      }
      // Only hugetlbfs mappings are aligned to the huge page by the kernel: take a block of slack.
      long raw = sys.mmap(address, length + align, Prot.NONE, RESERVE, -1, 0);
      long start = (raw + align - 1) & -align;
      if (start > raw) {
        sys.munmap(raw, start - raw);
      }
      sys.munmap(start + length, raw + align - start);
      return new Placement(sys, start, length, true);
    }
    if (Long.compareUnsigned(address, MIN_ADDRESS) < 0) {
      throw new GmemException(Errno.EPERM, "fixed mapping at 0x" + Long.toHexString(address) + " below vm.mmap_min_addr 0x" + Long.toHexString(MIN_ADDRESS));
    }
    if ((address & (align - 1)) != 0) {
      throw GmemException.einval("fixed mapping address 0x" + Long.toHexString(address) + " not aligned to 0x" + Long.toHexString(align));
    }
    long r;
    try {
      r = sys.mmap(address, length, Prot.NONE, RESERVE | MapFlags.FIXED_NOREPLACE, -1, 0);
    } catch (GmemException e) {
      if (e.errno() == Errno.EEXIST && !noReplace) {
        return new Placement(sys, address, length, false); // MAP_FIXED: the caller's memory is replaced by the mapping
      }
      throw e.errno() == Errno.EEXIST
          ? new GmemException(Errno.EEXIST, "MAP_FIXED_NOREPLACE: [0x" + Long.toHexString(address) + ", +0x" + Long.toHexString(length) + ") holds a mapping")
          : e;
    }
    if (r != address) {
      // A kernel older than 4.17 took MAP_FIXED_NOREPLACE for a hint and placed the range elsewhere.
      sys.munmap(r, length);
      if (noReplace) {
        throw new GmemException(Errno.EEXIST, "MAP_FIXED_NOREPLACE: [0x" + Long.toHexString(address) + ", +0x" + Long.toHexString(length) + ") holds a mapping");
      }
      return new Placement(sys, address, length, false);
    }
    return new Placement(sys, address, length, true);
  }

  public long address() {
    return address;
  }

  /** Gives the reservation back when no mapping was made over it; never unmaps the caller's memory. */
  public void release() {
    if (reserved) {
      sys.munmap(address, length);
    }
  }

  private static long minAddress() {
    try {
      return Long.parseLong(Files.readString(Path.of("/proc/sys/vm/mmap_min_addr")).trim());
    } catch (IOException | NumberFormatException e) {
      return 65536; // the common default; unknown here, so be safe
    }
  }
}
