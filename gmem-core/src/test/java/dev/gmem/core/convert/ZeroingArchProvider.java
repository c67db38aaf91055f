package dev.gmem.core.convert;

import dev.gmem.api.Shareability;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.HostMemory;

/**
 * A SW_PROTECTED arch that zeroes pages leaving private use and whose guest accesses carry their
 * own private bit, as TDX does: any private byte the host, or a shared guest access, ever reads
 * is then a leak, which is what the race test looks for. Registered only through
 * {@link TestRuntimes#withZeroingArch}.
 */
public final class ZeroingArchProvider extends AccessBitArchProvider {
  public static final String ID = "zeroing-test";

  @Override
  public String id() {
    return ID;
  }

  @Override
  public ArchHooks create(VmType type, HostMemory host) {
    return new Hooks() {
      @Override
      public ContentEffect contentEffect(Shareability from, Shareability to) {
        return from == Shareability.PRIVATE ? ContentEffect.ZERO : ContentEffect.PRESERVE;
      }
    };
  }
}
