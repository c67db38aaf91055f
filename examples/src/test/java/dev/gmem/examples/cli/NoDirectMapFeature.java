package dev.gmem.examples.cli;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.spi.Feature;
import dev.gmem.api.spi.FeatureProvider;
import dev.gmem.api.spi.HostMemory;

/** A feature fixture that gives NO_DIRECT_MAP meaning and installs nothing. */
public final class NoDirectMapFeature implements FeatureProvider {
  static final String ID = "test-no-direct-map";

  @Override
  public String id() {
    return ID;
  }

  @Override
  public long creationFlags() {
    return GmemFlags.NO_DIRECT_MAP;
  }

  @Override
  public Feature create(HostMemory host) {
    return new Feature() {};
  }
}
