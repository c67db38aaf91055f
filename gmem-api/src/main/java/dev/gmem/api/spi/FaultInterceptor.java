package dev.gmem.api.spi;

import dev.gmem.api.Api;
import dev.gmem.api.GmemException;

/**
 * Sees host and guest faults before they are resolved (userfault, population rules), and the
 * long-term references GUP would take (pins). Called with the inode's invalidate lock held
 * shared; must not call back into gmem's file or VM API.
 *
 * <p>The 0.1 methods (inode number and index) remain as the defaults the richer 0.2 ones delegate
 * to; override one form of each.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.1")
public interface FaultInterceptor {

  /**
   * A guest access through the software vCPU, after the shareability check passed. Return a non-zero
   * {@code KVM_MEMORY_EXIT_FLAG_*} value (e.g. USERFAULT, 1 &lt;&lt; 4) to make the access exit
   * to the VMM as a memory fault instead.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default long guestFault(GuestFault fault) {
    return guestFault(fault.page().ino(), fault.page().index(), fault.gpa(), fault.write(), fault.isPrivate());
  }

  /**
   * The largest page order a guest fault like {@code fault} may map at, as far as the feature is
   * concerned (KVM Userfault: 4 KiB, order 0, while the memslot has USERFAULT set). The software
   * vCPU's {@link dev.gmem.api.SoftwareVcpu#mappingOrder} takes the smallest answer. Lock-free.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default int maxMappingOrder(GuestFault fault) {
    return 18;
  }

  /** 0.1 form of {@link #guestFault(GuestFault)}. */
  @Api(status = Api.Status.DEPRECATED, since = "0.2")
  @Deprecated(since = "0.2")
  default long guestFault(long ino, long index, long gpa, boolean write, boolean isPrivate) {
    return 0;
  }

  /**
   * A host access to {@code page}: through a host mapping, a pin, or the VM's GPA view
   * ({@link dev.gmem.api.Vm#guestMemory()}, the VMM's own accesses as KVM makes them through
   * {@code userspace_addr}). Throw to refuse it.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default void hostFault(GmemPage page, boolean write) throws GmemException {
    hostFault(page.ino(), page.index(), write);
  }

  /** 0.1 form of {@link #hostFault(GmemPage, boolean)}. */
  @Api(status = Api.Status.DEPRECATED, since = "0.2")
  @Deprecated(since = "0.2")
  default void hostFault(long ino, long index, boolean write) throws GmemException {}

  /**
   * Long-term references are about to be taken on {@code [first, first+nrPages)}
   * ({@link dev.gmem.api.GuestMemFile#pin}, the analogue of GUP with FOLL_LONGTERM), after the
   * pages passed the host-fault checks. Throw to refuse, as GUP fails on memory removed from the
   * direct map (EFAULT); nothing is pinned then.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default void pin(GmemPage first, long nrPages) throws GmemException {}

  /**
   * Whether this interceptor must see host and guest accesses ({@link #hostFault},
   * {@link #guestFault}, {@link #maxMappingOrder}). One that only sees pins (direct-map removal)
   * answers false, so that accesses keep gmem's lock-free path; its access methods are then not
   * called.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default boolean interceptsAccesses() {
    return true;
  }

  /**
   * The memslot flags under which this interceptor must see accesses (KVM Userfault: USERFAULT,
   * whose bitmap counts only while a slot has the flag). Non-zero: once an access to a page of an
   * inode that no memslot with one of these flags binds went through every interceptor, later
   * accesses to that page may take gmem's lock-free path without calling this one again — as a
   * present PTE or stage-2 entry takes no fault — until the page is punched or converted, or until
   * such a memslot binds the inode: binding it with the flag, or setting the flag late, takes the
   * inode's pages off that path (waiting for accesses in flight) before the memslot call returns.
   * 0, the default: this interceptor sees every access, and no access of an inode it could see
   * takes the lock-free path.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default int accessMemslotFlags() {
    return 0;
  }

  /** The references taken on {@code [first, first+nrPages)} by a pin were dropped. Must not throw. */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default void unpin(GmemPage first, long nrPages) {}
}
