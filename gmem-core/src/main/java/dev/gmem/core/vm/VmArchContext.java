package dev.gmem.core.vm;

import dev.gmem.api.VmType;
import dev.gmem.api.spi.ArchContext;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.core.inode.GuestMemInodeImpl;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.LongFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One VM's {@link ArchContext}: leaks go to the inode that holds the page, found by number among
 * the runtime's live inodes (an inode is often invalidated at eviction, after every file of it
 * was closed); {@code bug} marks the VM dead.
 */
final class VmArchContext implements ArchContext {
  private static final Logger LOG = LoggerFactory.getLogger(VmArchContext.class);

  private final VmType type;
  private final LongFunction<GuestMemInodeImpl> inodes;
  private final AtomicReference<String> deathReason = new AtomicReference<>();
  /** Told once, when the VM dies: the vCPU paths read one volatile flag instead of this reference. */
  private volatile Runnable onDeath = () -> {};

  VmArchContext(VmType type, LongFunction<GuestMemInodeImpl> inodes) {
    this.type = type;
    this.inodes = inodes;
  }

  @Override
  public VmType vmType() {
    return type;
  }

  @Override
  public void leak(GmemPage first, long nrPages, String reason) {
    GuestMemInodeImpl inode = inodes.apply(first.ino());
    LOG.warn("{} VM: arch leaked {} page(s) at {}: {}", type, nrPages, first, reason);
    if (inode != null) {
      inode.leak(first.index(), nrPages);
    }
  }

  @Override
  public void bug(String reason) {
    if (deathReason.compareAndSet(null, reason)) {
      onDeath.run();
      LOG.error("{} VM is dead (KVM_BUG_ON): {}", type, reason);
    }
  }

  @Override
  public boolean isDead() {
    return deathReason.get() != null;
  }

  /** {@code r} runs when the VM dies, or now if it already did. */
  void onDeath(Runnable r) {
    onDeath = r;
    if (deathReason.get() != null) {
      r.run();
    }
  }

  /** Why the VM died, or null. */
  String deathReason() {
    return deathReason.get();
  }
}
