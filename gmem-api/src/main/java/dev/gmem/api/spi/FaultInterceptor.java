package dev.gmem.api.spi;

import dev.gmem.api.Api;
import dev.gmem.api.GmemException;

/**
 * Sees host and guest faults before they are resolved (userfault, population rules). Called with
 * the inode's invalidate lock held shared.
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public interface FaultInterceptor {

  /**
   * A guest (vCPU) access to {@code gpa} that resolves to page {@code index} of inode {@code ino}.
   * Return a non-zero {@code KVM_MEMORY_EXIT_FLAG_*} value (e.g. USERFAULT, 1 &lt;&lt; 4) to make
   * the access exit to the VMM as a memory fault instead.
   */
  default long guestFault(long ino, long index, long gpa, boolean write, boolean isPrivate) {
    return 0;
  }

  /** A host access through a mapping to page {@code index}; throw to refuse it. */
  default void hostFault(long ino, long index, boolean write) throws GmemException {}
}
