package dev.gmem.userfault.uffd.libc;

import jnr.ffi.Pointer;
import jnr.ffi.annotations.Variadic;
import jnr.ffi.types.size_t;
import jnr.ffi.types.ssize_t;

/**
 * The userfault plugin's own libc binding (plugins never import gmem-core): userfaultfd through
 * {@code syscall(2)}, its ioctls, {@code poll}, {@code read}/{@code write} and the few calls the
 * KVM probe needs. Addresses are {@code long}. Alone in its package because jnr-ffi generates the
 * implementation in an unnamed module, which can only implement an interface of an exported package.
 */
public interface UffdLibC {
  @Variadic(fixedCount = 1)
  long syscall(long number, long a1);

  @Variadic(fixedCount = 2)
  int open(String path, int flags, int mode);

  int close(int fd);

  @Variadic(fixedCount = 2)
  int ioctl(int fd, long request, long arg);

  @Variadic(fixedCount = 2)
  int ioctl(int fd, long request, Pointer arg);

  int poll(Pointer fds, long nfds, int timeout);

  @ssize_t
  long read(int fd, long buf, @size_t long count);

  @ssize_t
  long write(int fd, long buf, @size_t long count);

  int pipe(int[] fds);

  int madvise(long addr, @size_t long length, int advice);

  int eventfd(int initval, int flags);

  int setpriority(int which, int who, int prio);

  int getpriority(int which, int who);
}
