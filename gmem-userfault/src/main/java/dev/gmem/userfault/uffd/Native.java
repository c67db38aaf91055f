package dev.gmem.userfault.uffd;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.userfault.uffd.libc.UffdLibC;
import jnr.ffi.LibraryLoader;
import jnr.ffi.Memory;
import jnr.ffi.Pointer;
import jnr.ffi.Runtime;

/** The plugin's libc, loaded once; errno read right after a failure, on the same thread. */
public final class Native {
  private static final UffdLibC LIBC = LibraryLoader.create(UffdLibC.class).load("c");
  private static final Runtime RUNTIME = Runtime.getRuntime(LIBC);

  private Native() {}

  public static UffdLibC libc() {
    return LIBC;
  }

  public static Runtime runtime() {
    return RUNTIME;
  }

  /** errno of the last failed call on this thread. */
  public static int errno() {
    return RUNTIME.getLastError();
  }

  /** A {@link GmemException} for the last failure of {@code what}. */
  public static GmemException failure(String what) {
    int e = errno();
    return new GmemException(Errno.of(e), what + " failed: errno " + e);
  }

  /**
   * Makes the calling thread background work: {@code delta} nice steps below its priority now (at
   * most nice 19), with {@code setpriority(PRIO_PROCESS, 0, …)}, which on Linux sets the calling
   * thread alone. A thread may always lower its own priority; false where the call was refused.
   */
  public static boolean background(int delta) {
    int now = LIBC.getpriority(0, 0);
    return LIBC.setpriority(0, 0, Math.min(19, now + delta)) == 0;
  }

  /** Zeroed native memory of {@code size} bytes (freed by the GC). */
  public static Pointer allocate(int size) {
    return Memory.allocateDirect(RUNTIME, size, true);
  }
}
