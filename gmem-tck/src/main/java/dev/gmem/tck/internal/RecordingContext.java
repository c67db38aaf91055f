package dev.gmem.tck.internal;

import dev.gmem.api.VmType;
import dev.gmem.api.spi.ArchContext;
import dev.gmem.api.spi.GmemPage;

/** Core's {@link ArchContext}, with the leaks the arch reports recorded. */
final class RecordingContext implements ArchContext {
  private final ArchContext core;
  private final ArchLog log;

  RecordingContext(ArchContext core, ArchLog log) {
    this.core = core;
    this.log = log;
  }

  @Override
  public VmType vmType() {
    return core.vmType();
  }

  @Override
  public void leak(GmemPage first, long nrPages, String reason) {
    for (long i = 0; i < nrPages; i++) {
      log.leaked.add(first.plus(i));
    }
    log.events.add("leak " + first + " x" + nrPages + ": " + reason);
    core.leak(first, nrPages, reason);
  }

  @Override
  public void bug(String reason) {
    log.events.add("bug: " + reason);
    core.bug(reason);
  }

  @Override
  public boolean isDead() {
    return core.isDead();
  }
}
