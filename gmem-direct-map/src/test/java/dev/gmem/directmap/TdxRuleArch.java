package dev.gmem.directmap;

import dev.gmem.api.VmType;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.HostMemory;
import java.util.Set;

/**
 * The rule a TDX or SNP arch states (v12 {@code kvm_arch_gmem_supports_no_direct_map}: false for
 * both), nothing else: the refusal is tested through the SPI rule, not through a TDX plugin.
 */
final class TdxRuleArch implements ArchHooks {
  static final String ID = "direct-map-tdx-rule";

  @Override
  public boolean hasPrivateMemory() {
    return true;
  }

  @Override
  public boolean supportsNoDirectMap() {
    return false;
  }

  public static final class Provider implements ArchProvider {
    @Override
    public String id() {
      return ID;
    }

    @Override
    public Set<VmType> vmTypes() {
      return Set.of(VmType.TDX, VmType.SNP);
    }

    @Override
    public ArchHooks create(VmType type, HostMemory host) {
      return new TdxRuleArch();
    }
  }
}
