package dev.gmem.core.convert;

import dev.gmem.api.GmemException;

/**
 * Test hook: may throw at a fallible step of a conversion, to prove that every failure before
 * the point of no return leaves the inode exactly as it was.
 */
@FunctionalInterface
public interface FaultInjector {
  FaultInjector NONE = (step, index) -> {};

  /** Called before {@code step} acts on page {@code index}; throw to make the step fail. */
  void at(ConversionStep step, long index) throws GmemException;
}
