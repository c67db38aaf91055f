package dev.gmem.core.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.core.convert.TestInode;
import dev.gmem.core.sys.Sys;
import jnr.ffi.LibraryLoader;
import jnr.ffi.Pointer;
import jnr.ffi.annotations.In;

/**
 * A kernel reference to user pages, as O_DIRECT and io_uring fixed buffers take them (GUP):
 * {@code vmsplice} of a range into a pipe. The pipe holds the pages themselves, not a copy, until
 * it is read; what it reads then is what the pages held at that time.
 */
public final class PipeReference implements AutoCloseable {
  private static final Sys SYS = TestInode.SYS;

  /** The one syscall this needs beyond gmem's bindings. */
  public interface Splice {
    long vmsplice(int fd, @In Pointer iov, long nrSegs, int flags);
  }

  private static final Splice SPLICE = LibraryLoader.create(Splice.class).load("c");

  private final int[] pipe;
  private final long length;

  private PipeReference(int[] pipe, long length) {
    this.pipe = pipe;
    this.length = length;
  }

  /**
   * vmsplices {@code [address, +length)} (at most 64 KiB, the pipe's default capacity) into a
   * fresh pipe; {@link GmemException} (EFAULT where the memory faults) when the kernel cannot
   * take all of it.
   */
  public static PipeReference take(long address, long length) {
    int[] pipe = SYS.pipe();
    Pointer iov = SYS.allocate(16);
    iov.putLong(0, address);
    iov.putLong(8, length);
    long n = SPLICE.vmsplice(pipe[1], iov, 1, 0);
    if (n != length) {
      int errno = jnr.ffi.LastError.getLastError(jnr.ffi.Runtime.getRuntime(SPLICE));
      SYS.closeQuietly(pipe[0]);
      SYS.closeQuietly(pipe[1]);
      throw n < 0 ? GmemException.fromSyscall(errno, "vmsplice") : new GmemException(Errno.EFAULT, "vmsplice took " + n + " of " + length);
    }
    return new PipeReference(pipe, length);
  }

  /** Reads the whole reference out of the pipe and returns the 8 bytes at {@code at}. */
  public long readLong(long at) {
    Pointer buf = SYS.allocate((int) length);
    assertEquals(length, SYS.read(pipe[0], buf.address(), length));
    return buf.getLong(at);
  }

  @Override
  public void close() {
    SYS.closeQuietly(pipe[0]);
    SYS.closeQuietly(pipe[1]);
  }
}
