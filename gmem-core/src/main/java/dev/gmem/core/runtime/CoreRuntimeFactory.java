package dev.gmem.core.runtime;

import dev.gmem.api.GmemRuntime;
import dev.gmem.api.spi.RuntimeFactory;
import dev.gmem.core.config.GmemConfig;

/** Found by {@link GmemRuntime.Builder#build()} through ServiceLoader. */
public final class CoreRuntimeFactory implements RuntimeFactory {
  @Override
  public GmemRuntime create(GmemRuntime.Builder builder) {
    GmemConfig config = new GmemConfig(builder.properties(), builder.classLoader());
    return DaggerRuntimeComponent.factory().create(config).runtime();
  }
}
