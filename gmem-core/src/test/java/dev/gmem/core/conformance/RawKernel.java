package dev.gmem.core.conformance;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import jnr.ffi.LibraryLoader;
import jnr.ffi.Memory;
import jnr.ffi.Pointer;
import jnr.ffi.Runtime;
import jnr.ffi.annotations.Out;
import jnr.ffi.annotations.Variadic;
import jnr.ffi.types.off_t;
import jnr.ffi.types.size_t;
import jnr.ffi.types.ssize_t;

/**
 * The oracle side of the kernel-oracle and differential tests: libc and KVM straight from JNR,
 * with no gmem code in between — its own binding, its own ioctl numbers and struct layouts, and
 * errno names from libc ({@code strerrorname_np}). Every call returns the kernel's result or
 * throws {@link Failure} with the errno's name, so outcomes compare with gmem's as strings.
 */
final class RawKernel {
  /** {@code _IO(KVMIO, 0x01)}. */
  static final long KVM_CREATE_VM = 0xAE01L;
  /** {@code _IOWR(KVMIO, 0xd4, struct kvm_create_guest_memfd)}, 64 bytes. */
  static final long KVM_CREATE_GUEST_MEMFD = 0xC040AED4L;
  /** {@code _IOW(KVMIO, 0x49, struct kvm_userspace_memory_region2)}, 160 bytes. */
  static final long KVM_SET_USER_MEMORY_REGION2 = 0x40A0AE49L;

  static final int PROT_NONE = 0;
  static final int MAP_SHARED = 0x01;
  static final int MAP_PRIVATE = 0x02;
  static final int MAP_FIXED = 0x10;
  static final int MAP_ANONYMOUS = 0x20;
  static final int MAP_NORESERVE = 0x4000;
  static final int MAP_FIXED_NOREPLACE = 0x100000;

  /** The libc calls the oracle needs; {@code mmap}'s address is a Pointer (jnr-ffi #181). */
  public interface LibC {
    @Variadic(fixedCount = 2)
    int open(String path, int flags, int mode);

    int close(int fd);

    @Variadic(fixedCount = 2)
    int ioctl(int fd, long request, long arg);

    @Variadic(fixedCount = 2)
    int ioctl(int fd, long request, Pointer arg);

    long mmap(Pointer addr, @size_t long length, int prot, int flags, int fd, @off_t long offset);

    int munmap(long addr, @size_t long length);

    int fallocate(int fd, int mode, @off_t long offset, @off_t long length);

    int mincore(long addr, @size_t long length, @Out byte[] vec);

    int pipe(@Out int[] fds);

    @ssize_t
    long read(int fd, long buf, @size_t long count);

    @ssize_t
    long write(int fd, long buf, @size_t long count);

    @ssize_t
    long read(int fd, @Out byte[] buf, @size_t long count);

    @ssize_t
    long write(int fd, byte[] buf, @size_t long count);

    String strerrorname_np(int errnum);
  }

  private static final LibC C = LibraryLoader.create(LibC.class).load("c");
  private static final Runtime RT = Runtime.getRuntime(C);

  private RawKernel() {}

  /** A failed call: {@link #errno} is the kernel's errno by its C name (EINVAL, ...). */
  static final class Failure extends RuntimeException {
    final String errno;

    Failure(String call) {
      this(call, RT.getLastError());
    }

    private Failure(String call, int code) {
      this(call, C.strerrorname_np(code) == null ? "errno " + code : C.strerrorname_np(code));
    }

    Failure(String call, String errno) {
      super(call + ": " + errno, null, false, false);
      this.errno = errno;
    }
  }

  /** "ok" when {@code call} returns, else the errno's name. */
  static String outcome(Runnable call) {
    try {
      call.run();
      return "ok";
    } catch (Failure e) {
      return e.errno;
    }
  }

  private static int check(int r, String call) {
    if (r < 0) {
      throw new Failure(call);
    }
    return r;
  }

  static int openKvm() {
    return check(C.open("/dev/kvm", 02 | 02000000, 0), "open(/dev/kvm)");
  }

  static int createVm(int kvm, int type) {
    return check(C.ioctl(kvm, KVM_CREATE_VM, type), "KVM_CREATE_VM");
  }

  /** {@code struct kvm_create_guest_memfd { u64 size; u64 flags; u64 reserved[6]; }}. */
  static int createGuestMemfd(int vm, long size, long flags) {
    Pointer arg = Memory.allocateDirect(RT, 64, true);
    arg.putLong(0, size);
    arg.putLong(8, flags);
    return check(C.ioctl(vm, KVM_CREATE_GUEST_MEMFD, arg), "KVM_CREATE_GUEST_MEMFD");
  }

  /**
   * {@code struct kvm_userspace_memory_region2 { u32 slot, flags; u64 guest_phys_addr, memory_size,
   * userspace_addr, guest_memfd_offset; u32 guest_memfd, pad1; u64 pad2[14]; }}.
   */
  static void setUserMemoryRegion2(int vm, int slot, int flags, long gpa, long size, long userspaceAddr, int guestMemfd, long offset) {
    Pointer r = Memory.allocateDirect(RT, 160, true);
    r.putInt(0, slot);
    r.putInt(4, flags);
    r.putLong(8, gpa);
    r.putLong(16, size);
    r.putLong(24, userspaceAddr);
    r.putLong(32, offset);
    r.putInt(40, guestMemfd);
    check(C.ioctl(vm, KVM_SET_USER_MEMORY_REGION2, r), "KVM_SET_USER_MEMORY_REGION2");
  }

  static long mmap(long address, long length, int prot, int flags, int fd, long offset) {
    Pointer hint = address == 0 ? null : RT.getMemoryManager().newPointer(address);
    long r = C.mmap(hint, length, prot, flags, fd, offset);
    if (r == -1L) {
      throw new Failure("mmap");
    }
    return r;
  }

  static void munmap(long address, long length) {
    check(C.munmap(address, length), "munmap");
  }

  /**
   * An inaccessible anonymous region, for placing fixed mappings in or for addresses the kernel
   * only checks ({@code userspace_addr}); it costs no memory.
   */
  static long reserve(long length) {
    return mmap(0, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  }

  static void fallocate(int fd, int mode, long offset, long length) {
    check(C.fallocate(fd, mode, offset, length), "fallocate");
  }

  /** {@code write(fd, buf, buf.length)} at the file position. */
  static long write(int fd, byte[] buf) {
    long r = C.write(fd, buf, buf.length);
    if (r < 0) {
      throw new Failure("write");
    }
    return r;
  }

  static void close(int fd) {
    C.close(fd);
  }

  /** Per page of {@code [address, address+length)}: resident in the page cache ({@code mincore}). */
  static boolean[] resident(long address, long length) {
    byte[] vec = new byte[(int) ((length + 4095) / 4096)];
    check(C.mincore(address, length, vec), "mincore");
    boolean[] r = new boolean[vec.length];
    for (int i = 0; i < vec.length; i++) {
      r[i] = (vec[i] & 1) != 0;
    }
    return r;
  }

  /**
   * {@code n} bytes (at most a pipe's 64 KiB) at {@code address} as the kernel reads them
   * ({@code write(pipe, address, n)}), into {@code into}: EFAULT where a user access to any of
   * them would SIGBUS or the mapping forbids reading. Safe for the JVM.
   */
  static void copyOut(long address, int n, byte[] into) {
    int[] p = pipe();
    try {
      long copied = C.write(p[1], address, n);
      if (copied < 0) {
        throw new Failure("write(pipe)");
      }
      if (copied < n) {
        throw new Failure("write(pipe) stopped at byte " + copied, "EFAULT"); // a later byte faulted
      }
      if (C.read(p[0], into, n) != n) {
        throw new Failure("read(pipe)");
      }
    } finally {
      close(p[0]);
      close(p[1]);
    }
  }

  /** A host read of 8 bytes as the kernel does it ({@link #copyOut}). */
  static long kernelRead(long address) {
    byte[] b = new byte[8];
    copyOut(address, 8, b);
    return ByteBuffer.wrap(b).order(ByteOrder.nativeOrder()).getLong();
  }

  /** A host write of 8 bytes as the kernel does it ({@code read(pipe, address, 8)}). */
  static void kernelWrite(long address, long value) {
    int[] p = pipe();
    try {
      byte[] b = ByteBuffer.allocate(8).order(ByteOrder.nativeOrder()).putLong(value).array();
      if (C.write(p[1], b, 8) != 8) {
        throw new Failure("write(pipe)");
      }
      if (C.read(p[0], address, 8) < 0) {
        throw new Failure("read(pipe)");
      }
    } finally {
      close(p[0]);
      close(p[1]);
    }
  }

  private static int[] pipe() {
    int[] p = new int[2];
    check(C.pipe(p), "pipe");
    return p;
  }
}
