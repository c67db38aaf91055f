package dev.gmem.core.arch;

import dev.gmem.api.VmType;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.HostMemory;
import java.util.EnumSet;
import java.util.Set;

/**
 * The arch of VMs without hardware-protected memory: DEFAULT (everything shared, as a 6.18 x86
 * default VM) and SW_PROTECTED (private memory exists, enforced in software; contents survive
 * conversion).
 */
public final class DefaultArchProvider implements ArchProvider {
  public static final String ID = "default";

  @Override
  public String id() {
    return ID;
  }

  @Override
  public Set<VmType> vmTypes() {
    return EnumSet.of(VmType.DEFAULT, VmType.SW_PROTECTED);
  }

  @Override
  public ArchHooks create(VmType type, HostMemory host) {
    return type == VmType.SW_PROTECTED ? SW_PROTECTED : DEFAULT;
  }

  private static final ArchHooks DEFAULT = new ArchHooks() {};

  private static final ArchHooks SW_PROTECTED = new ArchHooks() {
    @Override
    public boolean hasPrivateMemory() {
      return true;
    }

    @Override
    public boolean supportsInitShared() {
      // In-place conversion semantics (upstream v7+): a private-capable VM may start shared.
      return true;
    }
  };
}
