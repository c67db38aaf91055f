package dev.gmem.api;

import java.nio.ByteBuffer;

/**
 * A host mapping of a guest_memfd file range ({@code mmap(MAP_SHARED)}). Accessors check the
 * page's shareability atomically with respect to conversion, punch and close (under the inode's
 * invalidate lock, or lock-free for a page already faulted, which those wait for): where the
 * kernel would raise SIGBUS they throw {@link GmemException} — EACCES for a page that is not
 * SHARED, EFAULT beyond EOF — and an access that fails faults no page in. Private pages are
 * really inaccessible in the mapping, so raw access by other means faults too.
 *
 * <p>On huge-page memory (hugetlb), whose mappings change only in whole huge pages, a huge page
 * that holds any private page is inaccessible to raw access as a whole; the accessors still reach
 * its shared pages, and {@link #buffer} refuses them.
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public interface HostMapping extends AutoCloseable {

  GuestMemFile file();

  /** File offset of the first mapped byte. */
  long offset();

  long length();

  int prot();

  /** Host virtual address of the first byte, for handing to the kernel (memslots, io). */
  long address();

  byte getByte(long offset);

  void putByte(long offset, byte value);

  long getLong(long offset);

  void putLong(long offset, long value);

  /** Copies {@code length} bytes at mapping offset {@code offset} into {@code dst}. */
  void read(long offset, byte[] dst, int dstIndex, int length);

  /** Copies {@code length} bytes from {@code src} to mapping offset {@code offset}. */
  void write(long offset, byte[] src, int srcIndex, int length);

  /** Fills {@code [offset, offset+length)} with {@code value}. */
  void fill(long offset, long length, byte value);

  /**
   * A direct view of {@code [offset, offset+length)} after checking it is all SHARED now. The view
   * does not re-check: after a conversion to private, access through it faults (an
   * {@link InternalError} from the JVM, as for a truncated mapped file). Never use it after close.
   * EFAULT where the range lies in a huge page that also holds pages the host may not fault (the
   * mapping covers such a huge page whole).
   */
  ByteBuffer buffer(long offset, int length);

  boolean isOpen();

  /** Unmaps. Idempotent. */
  @Override
  void close();
}
