package dev.gmem.core.shareability;

/**
 * Test hook for the fallible phase of an update: consulted before each allocation that
 * {@link ShareabilityStore#prepare} makes, so tests can prove that a failed preparation (upstream:
 * {@code mas_preallocate} returning ENOMEM) leaves no trace.
 *
 * <p>Production code uses {@link #NEVER}.
 */
@FunctionalInterface
public interface AllocationFailureInjector {

  /** Never fails an allocation. */
  AllocationFailureInjector NEVER = () -> false;

  /**
   * Asked once per allocation site reached while preparing an update.
   *
   * @return {@code true} to make that allocation fail with {@code ENOMEM}
   */
  boolean shouldFail();
}
