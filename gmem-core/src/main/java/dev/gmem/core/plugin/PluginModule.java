package dev.gmem.core.plugin;

import dagger.Module;
import dagger.Provides;
import dagger.multibindings.ElementsIntoSet;
import dagger.multibindings.Multibinds;
import dev.gmem.api.spi.AllocatorProvider;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.FeatureProvider;
import dev.gmem.core.config.GmemConfig;
import java.util.Set;

/**
 * Feeds {@link java.util.ServiceLoader} discovery (through {@link GmemConfig#classLoader()}) into
 * one Dagger set per provider kind, from which {@link PluginRegistry} is injected.
 *
 * <p>To use it: add {@code PluginModule.class} to a {@code @Singleton} component's modules and bind
 * {@link GmemConfig} and {@link dev.gmem.api.HostInfo} in it (e.g. {@code @BindsInstance} in the
 * component factory); then ask for {@link PluginRegistry}. Other modules may add providers that
 * ServiceLoader does not see with {@code @Provides @IntoSet Discovered<ArchProvider>} and
 * {@link Discovered#of}.
 */
@Module
public abstract class PluginModule {

  private PluginModule() {}

  // The @ElementsIntoSet methods alone would bind these sets; declaring them keeps the sets legal
  // (possibly empty) should a component ever take its contributions from elsewhere.
  @Multibinds
  abstract Set<Discovered<AllocatorProvider>> allocators();

  @Multibinds
  abstract Set<Discovered<ArchProvider>> arches();

  @Multibinds
  abstract Set<Discovered<FeatureProvider>> features();

  @Provides
  @ElementsIntoSet
  static Set<Discovered<AllocatorProvider>> discoveredAllocators(GmemConfig config) {
    return ServiceScan.scan(AllocatorProvider.class, config.classLoader());
  }

  @Provides
  @ElementsIntoSet
  static Set<Discovered<ArchProvider>> discoveredArches(GmemConfig config) {
    return ServiceScan.scan(ArchProvider.class, config.classLoader());
  }

  @Provides
  @ElementsIntoSet
  static Set<Discovered<FeatureProvider>> discoveredFeatures(GmemConfig config) {
    return ServiceScan.scan(FeatureProvider.class, config.classLoader());
  }
}
