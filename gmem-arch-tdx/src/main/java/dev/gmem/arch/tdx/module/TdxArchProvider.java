package dev.gmem.arch.tdx.module;

import dev.gmem.api.VmType;
import dev.gmem.api.spi.ArchContext;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.api.HostInfo;
import dev.gmem.api.spi.HostMemory;
import dev.gmem.api.spi.Support;
import java.util.EnumSet;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The {@code tdx} arch: serves {@link VmType#TDX}. Needs no TDX hardware — see
 * {@link dev.gmem.arch.tdx.TdxModule} for what is real and what is modelled.
 */
public final class TdxArchProvider implements ArchProvider {
  public static final String ID = "tdx";

  @Override
  public String id() {
    return ID;
  }

  @Override
  public Support probe(HostInfo host) {
    return Support.yes("no TDX hardware needed: the TDX module (S-EPT/PAMT states, SEAMCALLs, MRTD as real SHA-384) is modelled;"
        + " guest memory, conversion and punch are real; a TD runs on the software vCPU or a real vCPU of a DEFAULT KVM VM;"
        + " nothing is encrypted");
  }

  @Override
  public Set<VmType> vmTypes() {
    return EnumSet.of(VmType.TDX);
  }

  @Override
  public ArchHooks create(VmType type, HostMemory host, ArchContext vm) {
    return new TdxArch(vm);
  }

  /** Without a VM context (0.1 callers): leaks and death are kept by the TD alone. */
  @Override
  public ArchHooks create(VmType type, HostMemory host) {
    return new TdxArch(new LocalContext(type));
  }

  private static final class LocalContext implements ArchContext {
    private final VmType type;
    private final AtomicBoolean dead = new AtomicBoolean();

    LocalContext(VmType type) {
      this.type = type;
    }

    @Override
    public VmType vmType() {
      return type;
    }

    @Override
    public void leak(GmemPage first, long nrPages, String reason) {}

    @Override
    public void bug(String reason) {
      dead.set(true);
    }

    @Override
    public boolean isDead() {
      return dead.get();
    }
  }
}
