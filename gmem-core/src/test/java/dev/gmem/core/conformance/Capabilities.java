package dev.gmem.core.conformance;

import java.util.function.Supplier;
import jnr.ffi.LibraryLoader;
import jnr.ffi.Memory;
import jnr.ffi.Pointer;
import jnr.ffi.Runtime;
import jnr.ffi.annotations.Variadic;

/**
 * Per-thread capability changes for tests that must act as an unprivileged VMM would: Linux keeps
 * capabilities per thread ({@code capset} changes the caller's only), so one test thread can drop
 * CAP_DAC_OVERRIDE and raise it again from its permitted set without touching the JVM's other
 * threads.
 */
final class Capabilities {
  private static final long SYS_CAPGET = 125;
  private static final long SYS_CAPSET = 126;
  private static final int VERSION_3 = 0x20080522;
  private static final int CAP_DAC_OVERRIDE = 1;
  private static final int CAP_DAC_READ_SEARCH = 2;
  private static final int F_GETFD = 1;

  /** The libc calls this helper needs and core's binding does not have. */
  public interface Libc {
    @Variadic(fixedCount = 1)
    long syscall(long number, Pointer a1, Pointer a2);

    @Variadic(fixedCount = 2)
    int fcntl(int fd, int cmd, int arg);
  }

  private static final Libc C = LibraryLoader.create(Libc.class).load("c");
  private static final Runtime RT = Runtime.getRuntime(C);

  private Capabilities() {}

  static int fdFlags(int fd) {
    return C.fcntl(fd, F_GETFD, 0);
  }

  /** Runs {@code body} on this thread with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH out of its effective set. */
  static <T> T withoutDacOverride(Supplier<T> body) {
    Pointer header = Memory.allocateDirect(RT, 8);
    Pointer data = Memory.allocateDirect(RT, 24);
    header.putInt(0, VERSION_3);
    header.putInt(4, 0);
    if (C.syscall(SYS_CAPGET, header, data) != 0) {
      throw new IllegalStateException("capget failed");
    }
    int effective = data.getInt(0);
    data.putInt(0, effective & ~(1 << CAP_DAC_OVERRIDE | 1 << CAP_DAC_READ_SEARCH));
    if (C.syscall(SYS_CAPSET, header, data) != 0) {
      throw new IllegalStateException("capset failed");
    }
    try {
      return body.get();
    } finally {
      data.putInt(0, effective);
      if (C.syscall(SYS_CAPSET, header, data) != 0) {
        throw new IllegalStateException("could not restore this thread's capabilities");
      }
    }
  }
}
