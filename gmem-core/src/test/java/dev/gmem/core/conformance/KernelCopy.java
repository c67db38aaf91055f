package dev.gmem.core.conformance;

import dev.gmem.api.Errno;

/**
 * An OS-level probe: the kernel copies from an address ({@code write(pipe, addr, n)}), and answers
 * EFAULT where a user access would SIGBUS — without risking the JVM. Made by {@link RawKernel}, so
 * no gmem code stands between the probe and the kernel.
 */
public final class KernelCopy {
  private KernelCopy() {}

  /** null when the kernel could read {@code n} bytes at {@code address}, else the errno. */
  public static Errno read(long address, int n) {
    try {
      RawKernel.copyOut(address, n, new byte[n]);
      return null;
    } catch (RawKernel.Failure e) {
      return Errno.valueOf(e.errno);
    }
  }
}
