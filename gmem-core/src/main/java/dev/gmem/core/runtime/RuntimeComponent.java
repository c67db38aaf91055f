package dev.gmem.core.runtime;

import dagger.BindsInstance;
import dagger.Component;
import dev.gmem.core.config.GmemConfig;
import dev.gmem.core.plugin.PluginModule;
import dev.gmem.core.plugin.PluginRegistry;
import jakarta.inject.Singleton;

/** One runtime's object graph. */
@Singleton
@Component(modules = {CoreModule.class, PluginModule.class})
interface RuntimeComponent {

  /** Asked for before {@link #runtime()}: the configuration is checked before a backend opens anything. */
  PluginRegistry plugins();

  GmemRuntimeImpl runtime();

  @Component.Factory
  interface Factory {
    RuntimeComponent create(@BindsInstance GmemConfig config);
  }
}
