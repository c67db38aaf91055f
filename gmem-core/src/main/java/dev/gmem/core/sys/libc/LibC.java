package dev.gmem.core.sys.libc;

import jnr.ffi.Pointer;
import jnr.ffi.annotations.Out;
import jnr.ffi.annotations.Variadic;
import jnr.ffi.types.off_t;
import jnr.ffi.types.size_t;
import jnr.ffi.types.ssize_t;

/**
 * The one libc binding of gmem-core. An interface so that errno handling in
 * {@link dev.gmem.core.sys.Sys} can be tested with Mockito. Alone in its package because jnr-ffi
 * defines the implementation it generates in an unnamed module, which can implement only an
 * interface of an exported package: this is the one package core exports to everyone, and it is
 * not API. Addresses are {@code long}, except {@code mmap}'s, which is a
 * {@link Pointer}: a JNR function with six all-primitive parameters receives a corrupted sixth
 * argument on x86_64 (jnr-ffi #181).
 */
public interface LibC {

  @Variadic(fixedCount = 2)
  int open(String path, int flags, int mode);

  int close(int fd);

  @ssize_t
  long read(int fd, long buf, @size_t long count);

  @ssize_t
  long write(int fd, long buf, @size_t long count);

  @ssize_t
  long pwrite(int fd, long buf, @size_t long count, @off_t long offset);

  @ssize_t
  long pread(int fd, long buf, @size_t long count, @off_t long offset);

  @Variadic(fixedCount = 2)
  int ioctl(int fd, long request, long arg);

  @Variadic(fixedCount = 2)
  int ioctl(int fd, long request, Pointer arg);

  long mmap(Pointer addr, @size_t long length, int prot, int flags, int fd, @off_t long offset);

  int munmap(long addr, @size_t long length);

  @Variadic(fixedCount = 4)
  long mremap(long oldAddr, @size_t long oldLength, @size_t long newLength, int flags, long newAddr);

  int mprotect(long addr, @size_t long length, int prot);

  int madvise(long addr, @size_t long length, int advice);

  int fallocate(int fd, int mode, @off_t long offset, @off_t long length);

  int memfd_create(String name, int flags);

  int ftruncate(int fd, @off_t long length);

  int fstat(int fd, Pointer statbuf);

  int fstatfs(int fd, Pointer statfsbuf);

  long vmsplice(int fd, Pointer iov, @size_t long nrSegs, int flags);

  int mincore(long addr, @size_t long length, @Out byte[] vec);

  int pipe(@Out int[] fds);

  int dup(int fd);

  @Variadic(fixedCount = 2)
  int fcntl(int fd, int cmd, int arg);

  int fchmod(int fd, int mode);

  @Variadic(fixedCount = 1)
  long syscall(long number, long a1);

  @Variadic(fixedCount = 1)
  long syscall(long number, long a1, long a2, long a3);

  int getpid();

  /** {@code sigaction(2)}; gmem only queries ({@code act} null). */
  int sigaction(int signum, Pointer act, Pointer oldact);
}
