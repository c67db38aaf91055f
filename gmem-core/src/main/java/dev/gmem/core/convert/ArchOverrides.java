package dev.gmem.core.convert;

import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.Conversion;
import dev.gmem.api.spi.GmemPage;

/**
 * Which of {@link ArchHooks}' per-folio hooks an arch implements (either form of each). An arch
 * that keeps the defaults of {@code invalidate} has nothing to undo when pages leave private use,
 * and one that keeps those of {@code prepare} has no prepared state to clear: a conversion then
 * skips its walk over the range's folios (262,144 of them per GiB of 4 KiB pages), the bulk of a
 * round trip's cost.
 */
final class ArchOverrides {
  private static final ClassValue<Boolean> INVALIDATES =
      overrides(new Signature("invalidate", GmemPage.class, long.class), new Signature("invalidate", long.class, long.class));
  private static final ClassValue<Boolean> PREPARES = overrides(
      new Signature("prepare", GmemPage.class, long.class, int.class), new Signature("prepare", long.class, long.class, int.class));

  private static final ClassValue<Boolean> VETOES = overrides(new Signature("prepareConversion", Conversion.class));

  private ArchOverrides() {}

  /** Whether the arch can refuse or reserve for a conversion: else it is not asked, run by run. */
  static boolean vetoes(ArchHooks arch) {
    return VETOES.get(arch.getClass());
  }

  static boolean invalidates(ArchHooks arch) {
    return INVALIDATES.get(arch.getClass());
  }

  static boolean prepares(ArchHooks arch) {
    return PREPARES.get(arch.getClass());
  }

  private record Signature(String name, Class<?>... params) {}

  private static ClassValue<Boolean> overrides(Signature... forms) {
    return new ClassValue<>() {
      @Override
      protected Boolean computeValue(Class<?> type) {
        for (Signature s : forms) {
          try {
            if (type.getMethod(s.name(), s.params()).getDeclaringClass() != ArchHooks.class) {
              return true;
            }
          } catch (NoSuchMethodException e) {
            return true; // cannot tell: walk
          }
        }
        return false;
      }
    };
  }
}
