package dev.gmem.userfault.uffd;

import dev.gmem.api.Api;
import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import java.util.ArrayList;
import java.util.List;
import jnr.ffi.Pointer;

/**
 * A real userfaultfd ({@code userfaultfd(2)}, kernel-uapi §6), non-blocking and close-on-exec,
 * with its API handshake done: the ioctls on registered ranges (REGISTER, UNREGISTER, COPY,
 * ZEROPAGE, CONTINUE, POISON, WAKE) and reading {@code uffd_msg}s. Errors are the kernel's errnos.
 * The range ioctls may be issued from any thread (the kernel serialises them); each call here uses
 * a control structure of its own.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public final class Userfaultfd implements AutoCloseable {
  public static final long SYS_USERFAULTFD = 323;
  public static final int O_CLOEXEC = 0x80000;
  public static final int O_NONBLOCK = 0x800;

  public static final long UFFDIO_API = 0xC018AA3FL;
  public static final long UFFDIO_REGISTER = 0xC020AA00L;
  public static final long UFFDIO_UNREGISTER = 0x8010AA01L;
  public static final long UFFDIO_WAKE = 0x8010AA02L;
  public static final long UFFDIO_COPY = 0xC028AA03L;
  public static final long UFFDIO_ZEROPAGE = 0xC020AA04L;
  public static final long UFFDIO_CONTINUE = 0xC020AA07L;
  public static final long UFFDIO_POISON = 0xC020AA08L;
  public static final long UFFD_API = 0xAA;

  /** Register modes. */
  public static final long MODE_MISSING = 1;
  public static final long MODE_WP = 2;
  public static final long MODE_MINOR = 4;

  /** Features. */
  public static final long FEATURE_EVENT_REMOVE = 1L << 3;
  public static final long FEATURE_MISSING_SHMEM = 1L << 5;
  public static final long FEATURE_THREAD_ID = 1L << 8;
  public static final long FEATURE_MINOR_SHMEM = 1L << 10;
  public static final long FEATURE_POISON = 1L << 14;

  /** Events. */
  public static final int EVENT_PAGEFAULT = 0x12;
  public static final int EVENT_REMOVE = 0x15;
  public static final int EVENT_UNMAP = 0x16;

  /** Page-fault flags. */
  public static final long PAGEFAULT_FLAG_WRITE = 1;
  public static final long PAGEFAULT_FLAG_MINOR = 4;

  public static final int MSG_SIZE = 32;

  /** One control structure per thread, reused: an allocation per ioctl would cost more than the ioctl. */
  private static final ThreadLocal<Pointer> ARG = ThreadLocal.withInitial(() -> Native.allocate(64));

  private final int fd;
  private final long features;
  private volatile boolean open = true;

  private Userfaultfd(int fd, long features) {
    this.fd = fd;
    this.features = features;
  }

  /**
   * A new userfaultfd with {@code wanted} features: the handshake asks for those the kernel offers
   * (UFFDIO_API with features 0 reports them); EINVAL if one wanted is missing.
   */
  public static Userfaultfd open(long wanted) {
    long r = Native.libc().syscall(SYS_USERFAULTFD, O_CLOEXEC | O_NONBLOCK);
    if (r < 0) {
      throw Native.failure("userfaultfd");
    }
    int fd = (int) r;
    try {
      long offered = api(fd, 0, true);
      if ((wanted & ~offered) != 0) {
        throw GmemException.einval("userfaultfd lacks features 0x" + Long.toHexString(wanted & ~offered));
      }
      Native.libc().close(fd);
      r = Native.libc().syscall(SYS_USERFAULTFD, O_CLOEXEC | O_NONBLOCK);
      if (r < 0) {
        throw Native.failure("userfaultfd");
      }
      fd = (int) r;
      api(fd, wanted, false);
      return new Userfaultfd(fd, wanted);
    } catch (RuntimeException e) {
      Native.libc().close(fd);
      throw e;
    }
  }

  /** UFFDIO_API; returns the features the kernel reports. */
  private static long api(int fd, long features, boolean probe) {
    Pointer p = Native.allocate(24);
    p.putLong(0, UFFD_API);
    p.putLong(8, features);
    if (Native.libc().ioctl(fd, UFFDIO_API, p) != 0) {
      throw Native.failure("UFFDIO_API" + (probe ? " (probe)" : ""));
    }
    return p.getLong(8);
  }

  public int fd() {
    return fd;
  }

  public long features() {
    return features;
  }

  /** UFFDIO_REGISTER of {@code [start, start+len)} in {@code mode}; returns the ioctls allowed on it. */
  public long register(long start, long len, long mode) {
    Pointer p = ARG.get();
    p.putLong(0, start);
    p.putLong(8, len);
    p.putLong(16, mode);
    if (Native.libc().ioctl(fd, UFFDIO_REGISTER, p) != 0) {
      throw Native.failure("UFFDIO_REGISTER");
    }
    return p.getLong(24);
  }

  public void unregister(long start, long len) {
    Pointer p = ARG.get();
    p.putLong(0, start);
    p.putLong(8, len);
    if (Native.libc().ioctl(fd, UFFDIO_UNREGISTER, p) != 0) {
      throw Native.failure("UFFDIO_UNREGISTER");
    }
  }

  /** UFFDIO_COPY of {@code len} bytes from {@code src} to {@code dst}, waking the faulting threads; returns bytes copied. EEXIST where the page is present. */
  public long copy(long dst, long src, long len) {
    Pointer p = ARG.get();
    p.putLong(0, dst);
    p.putLong(8, src);
    p.putLong(16, len);
    p.putLong(24, 0);
    if (Native.libc().ioctl(fd, UFFDIO_COPY, p) != 0) {
      throw Native.failure("UFFDIO_COPY");
    }
    return p.getLong(32);
  }

  /** UFFDIO_ZEROPAGE: only for a page known to be zero. */
  public long zeropage(long start, long len) {
    return rangeOp(UFFDIO_ZEROPAGE, "UFFDIO_ZEROPAGE", start, len);
  }

  /** UFFDIO_CONTINUE: map the page-cache pages already there (MINOR faults). */
  public long resume(long start, long len) {
    return rangeOp(UFFDIO_CONTINUE, "UFFDIO_CONTINUE", start, len);
  }

  /** UFFDIO_POISON: a later access to the range fails (SIGBUS, EFAULT for the kernel's copies); for faults that can never be served. */
  public long poison(long start, long len) {
    return rangeOp(UFFDIO_POISON, "UFFDIO_POISON", start, len);
  }

  private long rangeOp(long request, String name, long start, long len) {
    Pointer p = ARG.get();
    p.putLong(0, start);
    p.putLong(8, len);
    p.putLong(16, 0);
    if (Native.libc().ioctl(fd, request, p) != 0) {
      throw Native.failure(name);
    }
    return p.getLong(24);
  }

  public void wake(long start, long len) {
    Pointer p = ARG.get();
    p.putLong(0, start);
    p.putLong(8, len);
    if (Native.libc().ioctl(fd, UFFDIO_WAKE, p) != 0) {
      throw Native.failure("UFFDIO_WAKE");
    }
  }

  /** One {@code uffd_msg}. */
  public record Message(int event, long flags, long address, long end) {
    public boolean isPageFault() {
      return event == EVENT_PAGEFAULT;
    }

    public boolean isMinor() {
      return (flags & PAGEFAULT_FLAG_MINOR) != 0;
    }

    public boolean isWrite() {
      return (flags & PAGEFAULT_FLAG_WRITE) != 0;
    }
  }

  /** Reads what messages are queued now into {@code buffer} (native, a multiple of 32 bytes); empty when none (EAGAIN). */
  public List<Message> read(Pointer buffer, int capacity) {
    long n = Native.libc().read(fd, buffer.address(), capacity);
    if (n < 0) {
      int e = Native.errno();
      if (e == Errno.EAGAIN.code()) {
        return List.of();
      }
      throw new GmemException(Errno.of(e), "read(userfaultfd) failed: errno " + e);
    }
    List<Message> out = new ArrayList<>((int) (n / MSG_SIZE));
    for (long off = 0; off + MSG_SIZE <= n; off += MSG_SIZE) {
      int event = buffer.getByte(off) & 0xff;
      if (event == EVENT_PAGEFAULT) {
        out.add(new Message(event, buffer.getLong(off + 8), buffer.getLong(off + 16), 0));
      } else {
        out.add(new Message(event, 0, buffer.getLong(off + 8), buffer.getLong(off + 16)));
      }
    }
    return out;
  }

  public boolean isOpen() {
    return open;
  }

  @Override
  public void close() {
    if (open) {
      open = false;
      Native.libc().close(fd);
    }
  }
}
