package dev.gmem.core.convert;

import dev.gmem.api.spi.ArchHooks;

/**
 * Which of {@link ArchHooks}' per-folio hooks an arch implements. An arch that keeps the default
 * {@code invalidate} has nothing to undo when pages leave private use, and one that keeps the
 * default {@code prepare} has no prepared state to clear: a conversion then skips its walk over
 * the range's folios (262,144 of them per GiB of 4 KiB pages), the bulk of a round trip's cost.
 */
final class ArchOverrides {
  private static final ClassValue<Boolean> INVALIDATES = overrides("invalidate", long.class, long.class);
  private static final ClassValue<Boolean> PREPARES = overrides("prepare", long.class, long.class, int.class);

  private ArchOverrides() {}

  static boolean invalidates(ArchHooks arch) {
    return INVALIDATES.get(arch.getClass());
  }

  static boolean prepares(ArchHooks arch) {
    return PREPARES.get(arch.getClass());
  }

  private static ClassValue<Boolean> overrides(String name, Class<?>... params) {
    return new ClassValue<>() {
      @Override
      protected Boolean computeValue(Class<?> type) {
        try {
          return type.getMethod(name, params).getDeclaringClass() != ArchHooks.class;
        } catch (NoSuchMethodException e) {
          return true; // cannot tell: walk
        }
      }
    };
  }
}
