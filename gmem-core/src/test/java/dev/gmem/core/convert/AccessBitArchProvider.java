package dev.gmem.core.convert;

import dev.gmem.api.VmType;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.HostMemory;
import java.util.Set;

/**
 * A SW_PROTECTED arch whose guest accesses carry their own private bit, as TDX's shared bit and
 * SNP's C-bit do: an access whose kind disagrees with the page is a memory-fault exit. Registered
 * only through {@link TestRuntimes#withAccessBitArch}.
 */
public class AccessBitArchProvider implements ArchProvider {
  public static final String ID = "access-bit-test";

  /** Private memory in software, INIT_SHARED allowed, accesses carrying their own bit. */
  static class Hooks implements ArchHooks {
    @Override
    public boolean hasPrivateMemory() {
      return true;
    }

    @Override
    public boolean supportsInitShared() {
      return true;
    }

    @Override
    public boolean privateBitInAccess() {
      return true;
    }
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
    return new Hooks();
  }
}
