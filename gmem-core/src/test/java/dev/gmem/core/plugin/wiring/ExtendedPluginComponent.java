package dev.gmem.core.plugin.wiring;

import dagger.BindsInstance;
import dagger.Component;
import dev.gmem.api.HostInfo;
import dev.gmem.core.config.GmemConfig;
import dev.gmem.core.plugin.PluginModule;
import dev.gmem.core.plugin.PluginRegistry;
import jakarta.inject.Singleton;

/** {@link PluginModule} next to another module that adds to its sets. */
@Singleton
@Component(modules = {PluginModule.class, BuiltInsModule.class})
interface ExtendedPluginComponent {

  PluginRegistry registry();

  @Component.Factory
  interface Factory {
    ExtendedPluginComponent create(@BindsInstance GmemConfig config, @BindsInstance HostInfo host);
  }
}
