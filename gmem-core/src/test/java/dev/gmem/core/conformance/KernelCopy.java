package dev.gmem.core.conformance;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.core.convert.TestInode;
import dev.gmem.core.sys.Sys;

/**
 * An OS-level probe: the kernel copies from an address ({@code write(pipe, addr, n)}), and answers
 * EFAULT where a user access would SIGBUS — without risking the JVM.
 */
public final class KernelCopy {
  private static final Sys SYS = TestInode.SYS;

  private KernelCopy() {}

  /** null when the kernel could read {@code n} bytes at {@code address}, else the errno. */
  public static Errno read(long address, int n) {
    int[] p = SYS.pipe();
    try {
      SYS.write(p[1], address, n);
      return null;
    } catch (GmemException e) {
      return e.errno();
    } finally {
      SYS.closeQuietly(p[0]);
      SYS.closeQuietly(p[1]);
    }
  }
}
