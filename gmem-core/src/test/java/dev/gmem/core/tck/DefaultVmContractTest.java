package dev.gmem.core.tck;

import dev.gmem.api.VmType;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.core.arch.DefaultArchProvider;
import dev.gmem.tck.ArchContractTests;

/** Core's DEFAULT arch (no private memory) through the contract kit, on the real kernel. */
class DefaultVmContractTest extends ArchContractTests {
  @Override
  protected ArchProvider provider() {
    return new DefaultArchProvider();
  }

  @Override
  protected VmType vmType() {
    return VmType.DEFAULT;
  }
}
