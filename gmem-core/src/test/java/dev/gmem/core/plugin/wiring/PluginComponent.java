package dev.gmem.core.plugin.wiring;

import dagger.BindsInstance;
import dagger.Component;
import dev.gmem.api.HostInfo;
import dev.gmem.core.config.GmemConfig;
import dev.gmem.core.plugin.PluginModule;
import dev.gmem.core.plugin.PluginRegistry;
import jakarta.inject.Singleton;

/** {@link PluginModule} alone, with the two bindings it expects from its host component. */
@Singleton
@Component(modules = PluginModule.class)
interface PluginComponent {

  PluginRegistry registry();

  @Component.Factory
  interface Factory {
    PluginComponent create(@BindsInstance GmemConfig config, @BindsInstance HostInfo host);
  }
}
