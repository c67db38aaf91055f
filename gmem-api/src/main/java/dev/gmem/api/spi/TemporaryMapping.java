package dev.gmem.api.spi;

import dev.gmem.api.Api;
import java.nio.ByteBuffer;

/**
 * A scoped, temporary mapping of pages of an inode (the kernel's {@code kmap_local_page} idea):
 * the only way framework code reaches a folio that was removed from gmem's direct map
 * (NO_DIRECT_MAP) — populate, write() population, emulation reads. Obtain it with
 * {@link HostMemory#mapTemporarily}, use it in a try-with-resources block, and it is unmapped when
 * the block ends. It never hands out an address or a buffer: every access is a bounds-checked copy
 * that fails with {@link IllegalStateException} after {@link #close()}, so nothing can keep
 * reaching the pages after the scope. Confined to the thread that opened it, as
 * {@code kmap_local} is to its CPU.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public interface TemporaryMapping extends AutoCloseable {

  /** The first page mapped. */
  GmemPage first();

  /** How many pages are mapped. */
  long nrPages();

  /** Copies {@code dst.remaining()} bytes from byte {@code offset} of the mapped range into {@code dst}. */
  void read(long offset, ByteBuffer dst);

  /** Copies {@code src.remaining()} bytes of {@code src} to byte {@code offset} of the mapped range. */
  void write(long offset, ByteBuffer src);

  /** Sets {@code length} bytes from byte {@code offset} to {@code value}. */
  void fill(long offset, long length, byte value);

  /** Whether the mapping is still in scope. */
  boolean isOpen();

  /** Unmaps; idempotent. */
  @Override
  void close();

  /**
   * Counters of one runtime's temporary mappings: open now, ever opened, pages mapped in all and
   * bytes copied through them.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  record Stats(long open, long opened, long pagesMapped, long bytesCopied) {
    public static final Stats NONE = new Stats(0, 0, 0, 0);
  }
}
