package dev.gmem.core.vm;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.HostMemory;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A SW_PROTECTED arch whose hooks carry a per-VM "context" number and log every call with it, so
 * a test sees which VM's hooks the inode calls before and after a context move; {@link #veto}
 * makes the next move's arch step refuse. Registered only through
 * {@link dev.gmem.core.convert.TestRuntimes#withArch}.
 */
public final class MoveArchProvider implements ArchProvider {
  public static final String ID = "move-test";
  static final List<String> LOG = new CopyOnWriteArrayList<>();
  static volatile Errno veto;
  private static final AtomicInteger NEXT = new AtomicInteger();

  static void reset() {
    LOG.clear();
    veto = null;
    NEXT.set(0);
  }

  @Override
  public String id() {
    return ID;
  }

  @Override
  public Set<VmType> vmTypes() {
    return Set.of(VmType.SW_PROTECTED);
  }

  @Override
  public ArchHooks create(VmType type, HostMemory host) {
    return new Hooks(NEXT.getAndIncrement());
  }

  /** Hooks of VM number {@code vm}; {@code context} is the number of the VM whose context they hold. */
  static final class Hooks implements ArchHooks {
    final int vm;
    volatile int context;

    Hooks(int vm) {
      this.vm = vm;
      this.context = vm;
    }

    @Override
    public boolean hasPrivateMemory() {
      return true;
    }

    @Override
    public boolean supportsInitShared() {
      return true;
    }

    @Override
    public void prepare(GmemPage first, long gfn, int order) {
      LOG.add("prepare vm" + vm + " ctx" + context + " index " + first.index());
    }

    @Override
    public void invalidate(GmemPage first, long nrPages) {
      LOG.add("invalidate vm" + vm + " ctx" + context + " index " + first.index());
    }

    @Override
    public void moveEncryptionContextFrom(ArchHooks source) {
      Errno refuse = veto;
      if (refuse != null) {
        LOG.add("veto vm" + vm);
        throw new GmemException(refuse, "test arch refuses the move");
      }
      Hooks from = (Hooks) source;
      context = from.context;
      from.context = -1;
      LOG.add("move vm" + from.vm + " -> vm" + vm);
    }
  }
}
