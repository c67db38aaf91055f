package dev.gmem.core.sys;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import java.util.concurrent.atomic.AtomicInteger;

/** Sole owner of one file descriptor: closed exactly once. */
public final class Fd implements AutoCloseable {
  private static final int CLOSED = -1;

  private final Sys sys;
  private final String what;
  private final AtomicInteger fd;

  public Fd(Sys sys, int fd, String what) {
    if (fd < 0) {
      throw new IllegalArgumentException("negative fd for " + what);
    }
    this.sys = sys;
    this.what = what;
    this.fd = new AtomicInteger(fd);
  }

  /** The number; EBADF once closed. */
  public int get() {
    int v = fd.get();
    if (v == CLOSED) {
      throw new GmemException(Errno.EBADF, what + " is closed");
    }
    return v;
  }

  public boolean isOpen() {
    return fd.get() != CLOSED;
  }

  public String what() {
    return what;
  }

  @Override
  public void close() {
    int v = fd.getAndSet(CLOSED);
    if (v != CLOSED) {
      sys.closeQuietly(v);
    }
  }

  @Override
  public String toString() {
    return what + "(fd " + fd.get() + ")";
  }
}
