package dev.gmem.core.inode;

import dev.gmem.api.Folio;
import dev.gmem.api.Pin;
import java.util.BitSet;
import java.util.concurrent.locks.Lock;

/**
 * Long-term references on pages of one inode. A punched page leaves the filemap with its
 * references (the pin keeps the old page, as a GUP pin keeps a truncated page); the pin then
 * forgets it so that closing does not drop a reference on a newer folio at the same index.
 */
final class PinImpl implements Pin {
  private final GuestMemInodeImpl inode;
  private final long startPage;
  private final long nrPages;
  private final BitSet held;
  private boolean closed;

  PinImpl(GuestMemInodeImpl inode, long startPage, long nrPages) {
    this.inode = inode;
    this.startPage = startPage;
    this.nrPages = nrPages;
    this.held = new BitSet((int) nrPages);
    held.set(0, (int) nrPages);
  }

  @Override
  public long offset() {
    return startPage << Folio.PAGE_SHIFT;
  }

  @Override
  public long size() {
    return nrPages << Folio.PAGE_SHIFT;
  }

  @Override
  public synchronized boolean isHeld() {
    return !held.isEmpty();
  }

  /** Pages {@code [start, end)} were removed from the filemap with their references. */
  synchronized void forget(long start, long end) {
    long s = Math.max(start, startPage);
    long e = Math.min(end, startPage + nrPages);
    if (s < e) {
      held.clear((int) (s - startPage), (int) (e - startPage));
    }
  }

  /** Drops the page references, then the pin's reference on the inode (which may evict it). Idempotent. */
  @Override
  public void close() {
    Lock l = inode.invalidateLock().readLock();
    l.lock();
    try {
      synchronized (this) {
        if (closed) {
          return;
        }
        closed = true;
        for (int i = held.nextSetBit(0); i >= 0; i = held.nextSetBit(i + 1)) {
          inode.filemap().put(startPage + i);
        }
        held.clear();
      }
      inode.pins().remove(this);
    } finally {
      l.unlock();
    }
    inode.pins().unpinned(startPage, nrPages);
    inode.release();
  }
}
