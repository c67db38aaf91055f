package dev.gmem.core.shareability;

/** Fails the allocation {@code countdown} calls after being armed, once; disarmed otherwise. */
final class CountdownInjector implements AllocationFailureInjector {

  private int countdown = -1;
  private int calls;

  void arm(int allocationsBeforeFailure) {
    countdown = allocationsBeforeFailure;
  }

  void disarm() {
    countdown = -1;
  }

  int calls() {
    return calls;
  }

  @Override
  public boolean shouldFail() {
    calls++;
    if (countdown < 0) {
      return false;
    }
    return countdown-- == 0;
  }
}
