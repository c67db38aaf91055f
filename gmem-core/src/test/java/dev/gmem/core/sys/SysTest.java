package dev.gmem.core.sys;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.mockito.ArgumentMatchers.anyInt;
import static org.mockito.ArgumentMatchers.anyLong;
import static org.mockito.ArgumentMatchers.eq;
import static org.mockito.Mockito.mock;
import static org.mockito.Mockito.never;
import static org.mockito.Mockito.verify;
import static org.mockito.Mockito.when;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.core.sys.libc.LibC;
import java.nio.ByteBuffer;
import java.util.function.IntSupplier;
import org.junit.jupiter.api.Test;

class SysTest {
  private final Sys sys = Sys.load();

  @Test
  void mapsAFileAtANonZeroOffset_jnrFfi181() {
    // The sixth mmap argument (offset) is the one jnr-ffi #181 corrupts.
    int fd = sys.memfdCreate("gmem-test", Sys.MFD_CLOEXEC);
    try {
      sys.ftruncate(fd, 3 * Sys.PAGE_SIZE);
      long whole = sys.mmap(0, 3 * Sys.PAGE_SIZE, 3, 1, fd, 0);
      Sys.buffer(whole, (int) (3 * Sys.PAGE_SIZE)).put((int) (2 * Sys.PAGE_SIZE), (byte) 0x5a);
      long tail = sys.mmap(0, Sys.PAGE_SIZE, 1, 1, fd, 2 * Sys.PAGE_SIZE);
      assertEquals(0x5a, Sys.buffer(tail, 1).get(0));
      sys.munmap(tail, Sys.PAGE_SIZE);
      sys.munmap(whole, 3 * Sys.PAGE_SIZE);
    } finally {
      sys.closeQuietly(fd);
    }
  }

  @Test
  void failuresCarryTheKernelErrno() {
    GmemException e = assertThrows(GmemException.class, () -> sys.fallocate(-1, 0, 0, 4096));
    assertEquals(Errno.EBADF, e.errno());
    GmemException inval = assertThrows(GmemException.class, () -> sys.mmap(0, 0, 3, 0x22, -1, 0));
    assertEquals(Errno.EINVAL, inval.errno());
  }

  @Test
  void errnoIsReadOnlyAfterAFailure() {
    LibC libc = mock(LibC.class);
    IntSupplier errno = mock(IntSupplier.class);
    when(errno.getAsInt()).thenReturn(11);
    Sys s = new Sys(libc, jnr.ffi.Runtime.getSystemRuntime(), errno);
    when(libc.fallocate(anyInt(), anyInt(), anyLong(), anyLong())).thenReturn(0);
    s.fallocate(3, 1, 0, 4096);
    verify(errno, never()).getAsInt();
    when(libc.madvise(anyLong(), anyLong(), eq(4))).thenReturn(-1);
    GmemException e = assertThrows(GmemException.class, () -> s.madvise(0x1000, 4096, 4));
    assertEquals(Errno.EAGAIN, e.errno());
    assertEquals(11, e.rawErrno());
  }

  @Test
  void unknownErrnoKeepsItsNumber() {
    GmemException e = GmemException.fromSyscall(200, "x");
    assertEquals(Errno.UNKNOWN, e.errno());
    assertEquals(200, e.rawErrno());
  }

  @Test
  void mincoreAndPipeWorkOnRealMemory() {
    int fd = sys.memfdCreate("gmem-mincore", Sys.MFD_CLOEXEC);
    try {
      sys.ftruncate(fd, 2 * Sys.PAGE_SIZE);
      long a = sys.mmap(0, 2 * Sys.PAGE_SIZE, 3, 1, fd, 0);
      ByteBuffer b = Sys.buffer(a, (int) (2 * Sys.PAGE_SIZE));
      b.put(0, (byte) 1);
      assertArrayEquals(new byte[] {1, 0}, sys.mincore(a, 2 * Sys.PAGE_SIZE));
      int[] p = sys.pipe();
      assertEquals(16, sys.write(p[1], a, 16));
      sys.closeQuietly(p[0]);
      sys.closeQuietly(p[1]);
      sys.munmap(a, 2 * Sys.PAGE_SIZE);
    } finally {
      sys.closeQuietly(fd);
    }
  }
}
