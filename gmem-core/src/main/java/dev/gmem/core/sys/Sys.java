package dev.gmem.core.sys;

import com.kenai.jffi.MemoryIO;
import dev.gmem.api.GmemException;
import dev.gmem.core.sys.libc.LibC;
import java.nio.ByteBuffer;
import java.util.function.IntSupplier;
import jnr.ffi.LibraryLoader;
import jnr.ffi.Pointer;
import jnr.ffi.Runtime;

/**
 * Checked syscalls: every failure becomes a {@link GmemException} carrying the kernel's errno,
 * which is read right after the failing call and never after a success (a saved errno is stale
 * after success).
 */
public final class Sys {
  public static final int O_RDONLY = 0;
  public static final int O_RDWR = 2;
  public static final int O_NONBLOCK = 0x800;
  public static final int O_CLOEXEC = 0x80000;

  public static final int MFD_CLOEXEC = 0x1;
  public static final int MFD_ALLOW_SEALING = 0x2;
  public static final int MFD_HUGETLB = 0x4;
  public static final int MFD_HUGE_SHIFT = 26;

  public static final int F_DUPFD_CLOEXEC = 1030;
  public static final int F_GETFD = 1;
  public static final int F_SETFD = 2;
  public static final int FD_CLOEXEC = 1;

  public static final int MADV_DONTNEED = 4;
  public static final int MADV_REMOVE = 9;
  public static final int MADV_DONTDUMP = 16;
  public static final int MADV_POPULATE_READ = 22;
  public static final int MADV_POPULATE_WRITE = 23;

  public static final int MAP_ANONYMOUS = 0x20;
  public static final int MAP_NORESERVE = 0x4000;

  public static final int MREMAP_MAYMOVE = 1;
  public static final int MREMAP_FIXED = 2;

  public static final long SYS_GETTID = 186;
  public static final long SYS_TGKILL = 234;
  public static final long SYS_USERFAULTFD = 323;
  public static final long SYS_MEMFD_SECRET = 447;
  public static final long SYS_MEMBARRIER = 324;

  public static final int MEMBARRIER_CMD_QUERY = 0;
  public static final int MEMBARRIER_CMD_PRIVATE_EXPEDITED = 1 << 3;
  public static final int MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED = 1 << 4;

  /** {@code SECRETMEM_MAGIC}: the f_type of {@code memfd_secret(2)} files. */
  public static final long SECRETMEM_MAGIC = 0x5345434dL;

  public static final long MAP_FAILED = -1L;
  public static final long PAGE_SIZE = 4096;

  private final LibC libc;
  private final Runtime runtime;
  private final IntSupplier lastError;

  public Sys(LibC libc, Runtime runtime, IntSupplier lastError) {
    this.libc = libc;
    this.runtime = runtime;
    this.lastError = lastError;
  }

  /** Binds libc. One instance per runtime is enough; the binding itself is cached by JNR. */
  public static Sys load() {
    LibC libc = LibraryLoader.create(LibC.class).load("c");
    Runtime rt = Runtime.getRuntime(libc);
    return new Sys(libc, rt, rt::getLastError);
  }

  public LibC libc() {
    return libc;
  }

  public Runtime runtime() {
    return runtime;
  }

  private GmemException fail(String call) {
    return GmemException.fromSyscall(lastError.getAsInt(), call);
  }

  public int open(String path, int flags) {
    int fd = libc.open(path, flags, 0);
    if (fd < 0) {
      throw fail("open(" + path + ")");
    }
    return fd;
  }

  /** close(2); errors are not actionable for the fds gmem owns, so they are ignored. */
  public void closeQuietly(int fd) {
    libc.close(fd);
  }

  public int ioctl(int fd, long request, long arg, String name) {
    int r = libc.ioctl(fd, request, arg);
    if (r < 0) {
      throw fail(name);
    }
    return r;
  }

  public int ioctl(int fd, long request, Pointer arg, String name) {
    int r = libc.ioctl(fd, request, arg);
    if (r < 0) {
      throw fail(name);
    }
    return r;
  }

  /** mmap(2); {@code hint} 0 lets the kernel choose, otherwise it is used with the given flags (e.g. MAP_FIXED). */
  public long mmap(long hint, long length, int prot, int flags, int fd, long offset) {
    Pointer addr = hint == 0 ? null : runtime.getMemoryManager().newPointer(hint);
    long r = libc.mmap(addr, length, prot, flags, fd, offset);
    if (r == MAP_FAILED) {
      throw fail("mmap");
    }
    return r;
  }

  public void munmap(long addr, long length) {
    if (libc.munmap(addr, length) != 0) {
      throw fail("munmap");
    }
  }

  /**
   * Moves the mapping at {@code from} onto {@code to} ({@code MREMAP_FIXED}): whatever was mapped
   * at {@code to} is unmapped in the same call, so the range is never unmapped in between.
   */
  public void mremapFixed(long from, long length, long to) {
    if (libc.mremap(from, length, length, MREMAP_MAYMOVE | MREMAP_FIXED, to) == MAP_FAILED) {
      throw fail("mremap");
    }
  }

  public void mprotect(long addr, long length, int prot) {
    if (libc.mprotect(addr, length, prot) != 0) {
      throw fail("mprotect");
    }
  }

  public void madvise(long addr, long length, int advice) {
    if (libc.madvise(addr, length, advice) != 0) {
      throw fail("madvise");
    }
  }

  public void fallocate(int fd, int mode, long offset, long length) {
    if (libc.fallocate(fd, mode, offset, length) != 0) {
      throw fail("fallocate");
    }
  }

  public void ftruncate(int fd, long length) {
    if (libc.ftruncate(fd, length) != 0) {
      throw fail("ftruncate");
    }
  }

  public int memfdCreate(String name, int flags) {
    int fd = libc.memfd_create(name, flags);
    if (fd < 0) {
      throw fail("memfd_create");
    }
    return fd;
  }

  /** A duplicate that is close-on-exec ({@code F_DUPFD_CLOEXEC}; plain dup(2) would drop the flag). */
  public int dup(int fd) {
    int r = libc.fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (r < 0) {
      throw fail("fcntl(F_DUPFD_CLOEXEC)");
    }
    return r;
  }

  public int fcntl(int fd, int cmd, int arg) {
    int r = libc.fcntl(fd, cmd, arg);
    if (r < 0) {
      throw fail("fcntl");
    }
    return r;
  }

  public void fchmod(int fd, int mode) {
    if (libc.fchmod(fd, mode) != 0) {
      throw fail("fchmod");
    }
  }

  /** fstat(2) decoded from the x86_64 {@code struct stat} (144 bytes). */
  public Stat fstat(int fd) {
    Pointer buf = allocate(144);
    if (libc.fstat(fd, buf) != 0) {
      throw fail("fstat");
    }
    return new Stat(buf.getLong(0), buf.getLong(8), buf.getLong(16), buf.getInt(24), buf.getLong(48), buf.getLong(56), buf.getLong(64));
  }

  /** {@code f_type} of the file system holding {@code fd} ({@code struct statfs}, 120 bytes on x86_64). */
  public long fstatfsType(int fd) {
    Pointer buf = allocate(120);
    if (libc.fstatfs(fd, buf) != 0) {
      throw fail("fstatfs");
    }
    return buf.getLong(0);
  }

  /**
   * {@code vmsplice(2)} of {@code [addr, addr + length)} into a fresh pipe: the kernel takes the
   * pages with GUP. Returns 0 when it did, else the errno (EFAULT where GUP cannot reach them, as
   * on {@code memfd_secret} memory). A probe: the pipe is closed again at once.
   */
  public int vmspliceProbe(long addr, long length) {
    int[] p = pipe();
    try {
      Pointer iov = allocate(16);
      iov.putLong(0, addr);
      iov.putLong(8, length);
      return libc.vmsplice(p[1], iov, 1, 0) >= 0 ? 0 : lastError.getAsInt();
    } finally {
      closeQuietly(p[0]);
      closeQuietly(p[1]);
    }
  }

  /** One byte per page, bit 0 = resident. */
  public byte[] mincore(long addr, long length) {
    byte[] vec = new byte[(int) ((length + PAGE_SIZE - 1) / PAGE_SIZE)];
    if (libc.mincore(addr, length, vec) != 0) {
      throw fail("mincore");
    }
    return vec;
  }

  public int[] pipe() {
    int[] fds = new int[2];
    if (libc.pipe(fds) != 0) {
      throw fail("pipe");
    }
    return fds;
  }

  public long read(int fd, long addr, long count) {
    long r = libc.read(fd, addr, count);
    if (r < 0) {
      throw fail("read");
    }
    return r;
  }

  public long write(int fd, long addr, long count) {
    long r = libc.write(fd, addr, count);
    if (r < 0) {
      throw fail("write");
    }
    return r;
  }

  public long pwrite(int fd, long addr, long count, long offset) {
    long r = libc.pwrite(fd, addr, count, offset);
    if (r < 0) {
      throw fail("pwrite");
    }
    return r;
  }

  public long pread(int fd, long addr, long count, long offset) {
    long r = libc.pread(fd, addr, count, offset);
    if (r < 0) {
      throw fail("pread");
    }
    return r;
  }

  public long syscall(long number, long a1, String name) {
    long r = libc.syscall(number, a1);
    if (r < 0) {
      throw fail(name);
    }
    return r;
  }

  /** The calling thread's kernel id, {@code gettid(2)}. */
  public int gettid() {
    return (int) libc.syscall(SYS_GETTID, 0);
  }

  /** {@code tgkill(getpid(), tid, sig)}: a signal to one thread of this process. */
  public void tgkill(int tid, int sig) {
    if (libc.syscall(SYS_TGKILL, libc.getpid(), tid, sig) < 0) {
      throw fail("tgkill");
    }
  }

  /**
   * Whether this process has a handler installed for {@code sig} (neither SIG_DFL nor SIG_IGN):
   * then the signal interrupts a blocking call without killing the process or being dropped.
   */
  public boolean signalHandled(int sig) {
    // glibc's struct sigaction starts with the handler; the rest (mask, flags, restorer) fits in 256 bytes.
    Pointer old = allocate(256);
    if (libc.sigaction(sig, null, old) != 0) {
      throw fail("sigaction");
    }
    long handler = old.getLong(0);
    return handler != 0 && handler != 1;
  }

  /**
   * {@code membarrier(cmd, 0, 0)}: with {@link #MEMBARRIER_CMD_PRIVATE_EXPEDITED}, every thread of
   * this process that is running executes a full memory barrier before the call returns.
   */
  public long membarrier(int cmd) {
    long r = libc.syscall(SYS_MEMBARRIER, cmd, 0, 0);
    if (r < 0) {
      throw fail("membarrier");
    }
    return r;
  }

  /** Zeroed native memory owned by the JVM (freed when unreachable); for control structures. */
  public Pointer allocate(int size) {
    return runtime.getMemoryManager().allocateDirect(size, true);
  }

  public Pointer pointer(long address) {
    return runtime.getMemoryManager().newPointer(address);
  }

  /** A direct view of native memory; not owned: never use it after the memory is unmapped. */
  public static ByteBuffer buffer(long address, int length) {
    return MemoryIO.getInstance().newDirectByteBuffer(address, length).order(java.nio.ByteOrder.nativeOrder());
  }

  /** The fields of {@code struct stat} gmem uses. */
  public record Stat(long dev, long ino, long nlink, int mode, long size, long blksize, long blocks) {}
}
