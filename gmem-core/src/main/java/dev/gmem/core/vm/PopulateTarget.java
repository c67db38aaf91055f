package dev.gmem.core.vm;

import dev.gmem.api.Folio;
import dev.gmem.api.spi.TemporaryMapping;
import dev.gmem.core.inode.GuestMemInodeImpl;
import dev.gmem.core.sys.Sys;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Where {@code postPopulate} writes a page: the buffer the arch gets for page {@code index},
 * opened before the call and closed after it ({@code taken}: the arch accepted the page).
 */
sealed interface PopulateTarget extends AutoCloseable {
  ByteBuffer open(long index);

  void close(long index, boolean taken);

  @Override
  void close();

  /**
   * The slot's window (a user mapping of the inode), for memory gmem's views may reach: one buffer
   * per {@link #WINDOW_PAGES} pages of the call, sliced per page, so a page costs no native call.
   */
  final class Window implements PopulateTarget {
    /** Pages of the slot's window one buffer covers (a ByteBuffer holds at most 2 GiB). */
    static final long WINDOW_PAGES = 1L << 18;

    private final long viewBase;
    private final long end;
    private ByteBuffer window;
    private long windowFirst;

    Window(long viewBase, long first, long nrPages) {
      this.viewBase = viewBase;
      this.end = first + nrPages;
    }

    @Override
    public ByteBuffer open(long index) {
      if (window == null || index - windowFirst >= WINDOW_PAGES || index < windowFirst) {
        windowFirst = index;
        window = Sys.buffer(viewBase + (index << Folio.PAGE_SHIFT), (int) (Math.min(end - index, WINDOW_PAGES) << Folio.PAGE_SHIFT));
      }
      return window.slice((int) ((index - windowFirst) << Folio.PAGE_SHIFT), (int) Folio.PAGE_SIZE).order(ByteOrder.nativeOrder());
    }

    @Override
    public void close(long index, boolean taken) {}

    @Override
    public void close() {}
  }

  /**
   * A page removed from gmem's direct map (NO_DIRECT_MAP in secret memory), reached through one
   * scoped temporary mapping of the call's pages ({@code kmap_local}), counted in the runtime's
   * temporary-mapping stats. A temporary mapping never hands out a buffer over the pages, so the
   * arch gets a 4 KiB bounce page holding the page's current content (an in-place populate reads
   * it); the content goes back through the mapping only when the arch took the page, so a refused
   * or failed page changes nothing; the bounce page is zeroed after every page, so no copy of
   * guest memory stays behind in ordinary memory.
   */
  final class Temporary implements PopulateTarget {
    private final long first;
    private final TemporaryMapping mapping;
    private final ByteBuffer bounce = ByteBuffer.allocateDirect((int) Folio.PAGE_SIZE).order(ByteOrder.nativeOrder());

    Temporary(GuestMemInodeImpl inode, long first, long nrPages) {
      this.first = first;
      this.mapping = inode.temporaryMappings().open(inode, first, nrPages);
    }

    private long offset(long index) {
      return (index - first) << Folio.PAGE_SHIFT;
    }

    @Override
    public ByteBuffer open(long index) {
      bounce.clear();
      mapping.read(offset(index), bounce);
      return bounce.clear(); // clear() keeps the byte order: native, as the window's buffers
    }

    @Override
    public void close(long index, boolean taken) {
      try {
        if (taken) {
          mapping.write(offset(index), bounce.clear());
        }
      } finally {
        zero();
      }
    }

    private void zero() {
      bounce.clear();
      while (bounce.hasRemaining()) {
        bounce.putLong(0L);
      }
      bounce.clear();
    }

    @Override
    public void close() {
      mapping.close();
    }
  }
}
