package dev.gmem.core.spi;

import dev.gmem.api.VmType;
import dev.gmem.api.spi.ArchContext;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.HostMemory;
import java.util.Set;

/** Serves SW_PROTECTED with {@link FixtureArch}; registered only through {@link SpiFixtures}. */
public final class FixtureArchProvider implements ArchProvider {
  public static final String ID = "spi-fixture";

  @Override
  public String id() {
    return ID;
  }

  @Override
  public Set<VmType> vmTypes() {
    return Set.of(VmType.SW_PROTECTED);
  }

  /** Without a context the fixture cannot report leaks or a dead VM; gmem-core always passes one. */
  @Override
  public ArchHooks create(VmType type, HostMemory host) {
    throw new IllegalStateException("the fixture arch needs an ArchContext");
  }

  @Override
  public ArchHooks create(VmType type, HostMemory host, ArchContext vm) {
    return new FixtureArch(vm);
  }
}
