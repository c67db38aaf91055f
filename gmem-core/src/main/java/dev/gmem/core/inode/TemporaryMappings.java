package dev.gmem.core.inode;

import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.MapFlags;
import dev.gmem.api.Prot;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.api.spi.TemporaryMapping;
import dev.gmem.core.sys.Mapping;
import dev.gmem.core.sys.Sys;
import java.nio.ByteBuffer;
import java.util.concurrent.atomic.AtomicLong;

/**
 * One runtime's temporary mappings ({@code kmap_local}): each maps only the pages asked for, from
 * the inode's memory fd, for the scope of one try-with-resources block, and is counted. Framework
 * code that must touch a folio removed from gmem's direct map (write() population, the zeroing
 * of punched secret memory, plugins' populate) goes through here, so the counters say how often
 * the direct-map removal was bridged.
 */
public final class TemporaryMappings {
  private final AtomicLong open = new AtomicLong();
  private final AtomicLong opened = new AtomicLong();
  private final AtomicLong pagesMapped = new AtomicLong();
  private final AtomicLong bytesCopied = new AtomicLong();

  /** Pages {@code [first, first + nrPages)} of {@code inode}: EINVAL beyond its end. */
  public TemporaryMapping open(GuestMemInodeImpl inode, long first, long nrPages) {
    if (first < 0 || nrPages <= 0 || first + nrPages > inode.nrPages() || first + nrPages < 0) {
      throw GmemException.einval("temporary mapping of pages [" + first + ", +" + nrPages + ") outside inode " + inode.ino()
          + " of " + inode.nrPages() + " pages");
    }
    Sys sys = inode.sys();
    long length = nrPages << Folio.PAGE_SHIFT;
    Mapping m = new Mapping(sys, sys.mmap(0, length, Prot.READ_WRITE, MapFlags.SHARED, inode.memory().get(), first << Folio.PAGE_SHIFT), length);
    open.incrementAndGet();
    opened.incrementAndGet();
    pagesMapped.addAndGet(nrPages);
    return new Scoped(new GmemPage(inode.ino(), first), nrPages, m);
  }

  public TemporaryMapping.Stats stats() {
    return new TemporaryMapping.Stats(open.get(), opened.get(), pagesMapped.get(), bytesCopied.get());
  }

  private final class Scoped implements TemporaryMapping {
    private final GmemPage first;
    private final long nrPages;
    private final Mapping mapping;
    private final Thread owner = Thread.currentThread();
    private final java.util.concurrent.atomic.AtomicBoolean inScope = new java.util.concurrent.atomic.AtomicBoolean(true);
    /** The whole mapping as a buffer, made on first use; never leaves this class. */
    private ByteBuffer whole;

    Scoped(GmemPage first, long nrPages, Mapping mapping) {
      this.first = first;
      this.nrPages = nrPages;
      this.mapping = mapping;
    }

    @Override
    public GmemPage first() {
      return first;
    }

    @Override
    public long nrPages() {
      return nrPages;
    }

    /** A view of {@code [offset, offset + length)}, only for the copy at hand (never handed out). */
    private ByteBuffer at(long offset, long length) {
      if (Thread.currentThread() != owner) {
        throw new IllegalStateException("a temporary mapping is confined to the thread that opened it");
      }
      if (!inScope.get()) {
        throw new IllegalStateException("temporary mapping of " + first + " used after its scope ended");
      }
      if (offset < 0 || length < 0 || offset + length > mapping.length() || length > Integer.MAX_VALUE) {
        throw new IndexOutOfBoundsException("[" + offset + ", +" + length + ") outside a temporary mapping of " + mapping.length() + " bytes");
      }
      bytesCopied.addAndGet(length);
      if (mapping.length() <= Integer.MAX_VALUE) {
        // One buffer over the whole mapping, sliced per copy: a write() of 1 GiB makes 262,144
        // page copies, and a JNI buffer per copy cost a tenth of the call.
        if (whole == null) {
          whole = Sys.buffer(mapping.address(), (int) mapping.length());
        }
        return whole.slice((int) offset, (int) length);
      }
      return Sys.buffer(mapping.address() + offset, (int) length);
    }

    @Override
    public void read(long offset, ByteBuffer dst) {
      dst.put(at(offset, dst.remaining()));
    }

    @Override
    public void write(long offset, ByteBuffer src) {
      at(offset, src.remaining()).put(src);
    }

    @Override
    public void fill(long offset, long length, byte value) {
      ByteBuffer b = at(offset, length);
      if (value == 0) {
        while (b.hasRemaining()) {
          b.put(ZEROS.duplicate().limit(Math.min(b.remaining(), ZEROS.capacity())));
        }
        return;
      }
      while (b.hasRemaining()) {
        b.put(value);
      }
    }

    @Override
    public boolean isOpen() {
      return inScope.get();
    }

    @Override
    public void close() {
      if (inScope.compareAndSet(true, false)) {
        mapping.close();
        open.decrementAndGet();
      }
    }
  }

  private static final ByteBuffer ZEROS = ByteBuffer.allocateDirect(64 << 10).asReadOnlyBuffer();
}
