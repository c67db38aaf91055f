package dev.gmem.api.spi;

import dev.gmem.api.Api;
import dev.gmem.api.VmType;
import java.util.Set;

/**
 * Provides the {@link ArchHooks} of one or more VM types. gmem-core carries the default arch for
 * DEFAULT and SW_PROTECTED; vendors add TDX, SNP, pKVM and others. When several providers serve a
 * type, {@code gmem.arch.<TYPE>} picks one by id.
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public interface ArchProvider extends GmemProvider {

  /** The VM types this provider implements. */
  Set<VmType> vmTypes();

  /** Hooks for one new VM of {@code type}. */
  ArchHooks create(VmType type, HostMemory host);

  /**
   * Hooks for one new VM of {@code type}, with the VM's {@link ArchContext} for reporting leaked
   * pages and a dead VM. gmem-core calls this one; the default ignores the context.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default ArchHooks create(VmType type, HostMemory host, ArchContext vm) {
    return create(type, host);
  }
}
