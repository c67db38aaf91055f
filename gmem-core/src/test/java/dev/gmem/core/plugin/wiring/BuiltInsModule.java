package dev.gmem.core.plugin.wiring;

import dagger.Module;
import dagger.Provides;
import dagger.multibindings.IntoSet;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.core.plugin.Discovered;
import dev.gmem.core.plugin.fixtures.BuiltinArch;

/** Contributes a provider without ServiceLoader, as a runtime module may for its built-ins. */
@Module
interface BuiltInsModule {

  @Provides
  @IntoSet
  static Discovered<ArchProvider> builtinArch() {
    return Discovered.of(new BuiltinArch());
  }
}
