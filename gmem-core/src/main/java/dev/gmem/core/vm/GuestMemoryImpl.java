package dev.gmem.core.vm;

import com.kenai.jffi.MemoryIO;
import dev.gmem.api.Errno;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.GuestMemory;
import dev.gmem.api.Memslot;
import dev.gmem.core.file.GuestMemFileImpl;
import dev.gmem.core.inode.GuestMemInodeImpl;
import dev.gmem.core.memslot.MemslotTable;
import dev.gmem.core.sys.Sys;
import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Objects;

/**
 * A VM's guest memory by GPA with the host's rules, as KVM's own accesses through
 * {@code userspace_addr} have them: GPA → memslot → inode, the host-fault check of every page
 * (arch verdict, leaked pages, feature interceptors), then a copy through the memslot's window
 * under its invalidate lock taken shared.
 */
public final class GuestMemoryImpl implements GuestMemory {
  private static final MemoryIO IO = MemoryIO.getInstance();
  private static final VarHandle INTS = MethodHandles.byteBufferViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);
  private static final VarHandle LONGS = MethodHandles.byteBufferViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);
  private static final long PAGE = Folio.PAGE_SIZE;

  private final MemslotTable memslots;
  private final Runnable checkLive;

  /**
   * @param memslots  the VM's memslots
   * @param checkLive throws when the VM is closed (EBADF) or dead (EIO)
   */
  public GuestMemoryImpl(MemslotTable memslots, Runnable checkLive) {
    this.memslots = memslots;
    this.checkLive = checkLive;
  }

  /**
   * The part of an access that falls in one memslot: {@code length} bytes at {@code fileOffset} of
   * {@code inode}, copied through the slot's window.
   */
  private record Piece(GuestMemInodeImpl inode, MemslotTable.Binding slot, long gpa, long fileOffset, long length) {
    long firstPage() {
      return fileOffset / PAGE;
    }

    long endPage() {
      return (fileOffset + length + PAGE - 1) / PAGE;
    }

    long address() {
      return slot.viewBase() + fileOffset;
    }
  }

  /** Splits {@code [gpa, gpa + length)} at memslot boundaries; EFAULT at the first byte in no memslot. */
  private List<Piece> resolve(long gpa, long length) {
    checkLive.run();
    if (length < 0 || Long.compareUnsigned(gpa + length, gpa) < 0 && gpa + length != 0) {
      throw GmemException.einval("GPA range [0x" + Long.toHexString(gpa) + ", +0x" + Long.toHexString(length) + ") wraps");
    }
    List<Piece> pieces = new ArrayList<>();
    for (long done = 0; done < length; ) {
      long a = gpa + done;
      MemslotTable.Binding slot = memslots.binding(a);
      if (slot == null) {
        throw new GmemException(Errno.EFAULT, "GPA 0x" + Long.toHexString(a) + " is in no memslot");
      }
      long n = Math.min(length - done, slot.gpa() + slot.size() - a);
      pieces.add(new Piece(slot.inode(), slot, a, slot.fileOffset(a), n));
      done += n;
    }
    return pieces;
  }

  /** The read locks of every inode the pieces touch, taken in inode order. */
  private static List<GuestMemInodeImpl> lock(List<Piece> pieces) {
    if (pieces.size() == 1) { // the common access, inside one memslot: no sorting
      GuestMemInodeImpl inode = pieces.get(0).inode();
      inode.invalidateLock().readLock().lock();
      return List.of(inode);
    }
    List<GuestMemInodeImpl> inodes = pieces.stream().map(Piece::inode).distinct().sorted(Comparator.comparingLong(GuestMemInodeImpl::ino)).toList();
    int locked = 0;
    try {
      for (GuestMemInodeImpl inode : inodes) {
        inode.invalidateLock().readLock().lock();
        locked++;
      }
    } finally {
      if (locked < inodes.size()) {
        unlock(inodes.subList(0, locked));
      }
    }
    return inodes;
  }

  private static void unlock(List<GuestMemInodeImpl> inodes) {
    for (int i = inodes.size() - 1; i >= 0; i--) {
      inodes.get(i).invalidateLock().readLock().unlock();
    }
  }

  /**
   * With the locks held: every page must be one the host may fault (EFAULT naming the GPA
   * otherwise, before anything happens), then each piece is host-faulted (interceptors, folios).
   */
  private static void fault(List<Piece> pieces, boolean write) {
    for (Piece p : pieces) {
      if (!p.slot().window().isOpen()) { // deleted after the lookup: its window goes under our lock
        throw new GmemException(Errno.EFAULT, "GPA 0x" + Long.toHexString(p.gpa()) + " is in no memslot");
      }
    }
    for (Piece p : pieces) {
      for (long i = p.firstPage(); i < p.endPage(); i++) {
        if (!p.inode().faults().hostMayFault(i)) {
          long gpa = Math.max(p.gpa(), p.gpa() + (i * PAGE - p.fileOffset()));
          throw new GmemException(Errno.EFAULT, "GPA 0x" + Long.toHexString(gpa) + " is not accessible to the host ("
              + p.inode().shareabilityStore().get(i) + (p.inode().leakedPages() > 0 ? " or leaked" : "") + ")");
        }
      }
    }
    for (Piece p : pieces) {
      // the piece's pages in one call: checked, then the interceptors, then the folios (a bulk
      // write's absent pages added with one filemap update per run)
      p.inode().faults().hostFault(p.firstPage(), p.endPage(), write);
    }
  }

  @Override
  public void read(long gpa, byte[] dst, int index, int length) {
    Objects.checkFromIndexSize(index, length, dst.length);
    copy(gpa, dst, index, length, false);
  }

  @Override
  public void write(long gpa, byte[] src, int index, int length) {
    Objects.checkFromIndexSize(index, length, src.length);
    copy(gpa, src, index, length, true);
  }

  private void copy(long gpa, byte[] buf, int index, int length, boolean write) {
    copyPieces(gpa, length, write, (p, done) -> {
      if (write) {
        IO.putByteArray(p.address(), buf, index + (int) done, (int) p.length());
      } else {
        IO.getByteArray(p.address(), buf, index + (int) done, (int) p.length());
      }
    });
  }

  /** One piece's copy; {@code done}: the bytes of the earlier pieces. */
  @FunctionalInterface
  private interface PieceCopy {
    void copy(Piece p, long done);
  }

  /**
   * Every copy's frame: the pieces of {@code [gpa, gpa + length)} under their invalidate locks,
   * every page checked and faulted before any byte moves (a failed check moves nothing), then
   * {@code copy} for each piece in GPA order.
   */
  private void copyPieces(long gpa, long length, boolean write, PieceCopy copy) {
    List<Piece> pieces = resolve(gpa, length);
    List<GuestMemInodeImpl> locked = lock(pieces);
    try {
      fault(pieces, write);
      long done = 0;
      for (Piece p : pieces) {
        copy.copy(p, done);
        done += p.length();
      }
    } finally {
      unlock(locked);
    }
  }

  @Override
  public void read(long gpa, ByteBuffer dst) {
    if (dst.isReadOnly()) {
      throw new java.nio.ReadOnlyBufferException();
    }
    copy(gpa, dst, false);
  }

  @Override
  public void write(long gpa, ByteBuffer src) {
    copy(gpa, src, true);
  }

  /**
   * As the byte[] copy — every page checked under the invalidate locks, nothing moved unless all
   * may be — with one memcpy per piece between the window and a direct buffer (no heap bounce:
   * the migration stream's copy straight to the socket's buffer).
   */
  private void copy(long gpa, ByteBuffer buf, boolean write) {
    if (!buf.isDirect()) {
      int n = buf.remaining();
      if (buf.hasArray()) {
        copy(gpa, buf.array(), buf.arrayOffset() + buf.position(), n, write);
      } else {
        byte[] b = new byte[n];
        if (write) {
          buf.duplicate().get(b);
        }
        copy(gpa, b, 0, n, write);
        if (!write) {
          buf.duplicate().put(b);
        }
      }
      buf.position(buf.position() + n);
      return;
    }
    int length = buf.remaining();
    long base = IO.getDirectBufferAddress(buf) + buf.position();
    copyPieces(gpa, length, write, (p, done) -> {
      if (write) {
        populate(p);
        IO.copyMemory(base + done, p.address(), p.length());
      } else {
        IO.copyMemory(p.address(), base + done, p.length());
      }
    });
    buf.position(buf.position() + length);
  }

  /** Whole pages a bulk write populates first: below this the page faults cost less than the call. */
  private static final long POPULATE_MIN = 16 * PAGE;

  /**
   * Before a bulk write of whole pages (a migration's run): MADV_POPULATE_WRITE of the window's
   * range, so the kernel allocates them in one call instead of one trap per 4 KiB page. Every
   * page was checked as one the host may fault, under the locks we hold: the same pages the
   * copy would fault. A failure only leaves the faults to the copy.
   */
  private static void populate(Piece p) {
    long from = (p.address() + PAGE - 1) & -PAGE;
    long to = (p.address() + p.length()) & -PAGE;
    if (to - from >= POPULATE_MIN) {
      try {
        p.inode().sys().madvise(from, to - from, Sys.MADV_POPULATE_WRITE);
      } catch (GmemException e) {
        // the copy faults them in one by one
      }
    }
  }

  /** What a scalar access does with the 8-byte-or-smaller view of its bytes. */
  @FunctionalInterface
  private interface Scalar {
    long at(ByteBuffer view);
  }

  /** One naturally aligned scalar of {@code size} bytes (so within one page), with the locks held. */
  private long scalar(long gpa, int size, boolean write, Scalar op) {
    if ((gpa & (size - 1)) != 0) {
      throw GmemException.einval("GPA 0x" + Long.toHexString(gpa) + " is not " + size + "-byte aligned");
    }
    List<Piece> pieces = resolve(gpa, size);
    List<GuestMemInodeImpl> locked = lock(pieces);
    try {
      fault(pieces, write);
      return op.at(Sys.buffer(pieces.get(0).address(), size));
    } finally {
      unlock(locked);
    }
  }

  @Override
  public int loadInt(long gpa) {
    return (int) scalar(gpa, Integer.BYTES, false, b -> (int) INTS.getAcquire(b, 0));
  }

  @Override
  public void storeInt(long gpa, int value) {
    scalar(gpa, Integer.BYTES, true, b -> {
      INTS.setRelease(b, 0, value);
      return 0;
    });
  }

  @Override
  public long loadLong(long gpa) {
    return scalar(gpa, Long.BYTES, false, b -> (long) LONGS.getAcquire(b, 0));
  }

  @Override
  public void storeLong(long gpa, long value) {
    scalar(gpa, Long.BYTES, true, b -> {
      LONGS.setRelease(b, 0, value);
      return 0;
    });
  }

  @Override
  public boolean compareAndSetInt(long gpa, int expected, int value) {
    return scalar(gpa, Integer.BYTES, true, b -> INTS.compareAndSet(b, 0, expected, value) ? 1 : 0) != 0;
  }

  @Override
  public boolean compareAndSetLong(long gpa, long expected, long value) {
    return scalar(gpa, Long.BYTES, true, b -> LONGS.compareAndSet(b, 0, expected, value) ? 1 : 0) != 0;
  }

  /** A channel transfer of one page's bytes through a view of them; returns the bytes moved, -1 at end of stream. */
  @FunctionalInterface
  private interface Transfer {
    int move(ByteBuffer view) throws IOException;
  }

  @Override
  public long readFrom(ReadableByteChannel src, long gpa, long length) throws IOException {
    return transfer(gpa, length, true, src::read);
  }

  @Override
  public long writeTo(WritableByteChannel dst, long gpa, long length) throws IOException {
    return transfer(gpa, length, false, dst::write);
  }

  /** Page by page, each under its inode's lock; an unreachable page ends the call once bytes moved. */
  private long transfer(long gpa, long length, boolean intoGuest, Transfer op) throws IOException {
    long done = 0;
    while (done < length) {
      long a = gpa + done;
      int chunk = (int) Math.min(length - done, PAGE - (a & (PAGE - 1)));
      List<Piece> pieces;
      List<GuestMemInodeImpl> locked;
      try {
        pieces = resolve(a, chunk);
        locked = lock(pieces);
      } catch (GmemException e) {
        if (done == 0 || e.errno() != Errno.EFAULT) {
          throw e;
        }
        return done;
      }
      try {
        fault(pieces, intoGuest);
        ByteBuffer view = Sys.buffer(pieces.get(0).address(), chunk);
        while (view.hasRemaining()) {
          if (op.move(view) <= 0) {
            return done + view.position(); // end of stream, or a non-blocking channel that cannot move more now
          }
        }
      } catch (GmemException e) {
        if (done == 0 || e.errno() != Errno.EFAULT) {
          throw e;
        }
        return done;
      } finally {
        unlock(locked);
      }
      done += chunk;
    }
    return done;
  }

  @Override
  public boolean isAccessible(long gpa, long length) {
    List<Piece> pieces;
    try {
      pieces = resolve(gpa, length);
    } catch (GmemException e) {
      if (e.errno() == Errno.EFAULT) {
        return false;
      }
      throw e;
    }
    List<GuestMemInodeImpl> locked = lock(pieces);
    try {
      for (Piece p : pieces) {
        for (long i = p.firstPage(); i < p.endPage(); i++) {
          if (!p.inode().faults().hostMayFault(i)) {
            return false;
          }
        }
      }
      return true;
    } finally {
      unlock(locked);
    }
  }
}
