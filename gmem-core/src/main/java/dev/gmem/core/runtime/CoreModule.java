package dev.gmem.core.runtime;

import dagger.Module;
import dagger.Provides;
import dev.gmem.api.BackendInfo;
import dev.gmem.api.HostInfo;
import dev.gmem.api.spi.HostMemory;
import dev.gmem.core.backend.Backend;
import dev.gmem.core.backend.BackendSelector;
import dev.gmem.core.backend.KvmBackend;
import dev.gmem.core.backend.MemfdBackend;
import dev.gmem.core.config.GmemConfig;
import dev.gmem.core.host.HostMemoryImpl;
import dev.gmem.core.host.HostProbe;
import dev.gmem.core.memslot.MemslotLimits;
import dev.gmem.core.sys.Kvm;
import dev.gmem.core.sys.Sys;
import jakarta.inject.Singleton;

/** Native layer, host probe and backend choice for one runtime. */
@Module
abstract class CoreModule {
  private CoreModule() {}

  /** Binding libc generates classes; the binding is stateless, so one per JVM is enough. */
  private static final class Libc {
    static final Sys SYS = Sys.load();
  }

  @Provides
  @Singleton
  static Sys sys() {
    return Libc.SYS;
  }

  @Provides
  @Singleton
  static Kvm kvm(Sys sys) {
    return new Kvm(sys);
  }

  @Provides
  @Singleton
  static HostInfo host(Sys sys, Kvm kvm) {
    return new HostProbe(sys, kvm).probe();
  }

  /** Probed once per runtime, for every backend: the memfd backend rejects what this host's KVM rejects. */
  @Provides
  @Singleton
  static MemslotLimits memslotLimits(HostInfo host, Kvm kvm) {
    return MemslotLimits.probe(host, kvm);
  }

  @Provides
  @Singleton
  static BackendInfo backendInfo(HostInfo host, GmemConfig config) {
    return BackendSelector.choose(host, config.get(GmemConfig.BACKEND));
  }

  @Provides
  @Singleton
  static Backend backend(BackendInfo info, Sys sys, Kvm kvm, HostInfo host) {
    return info.name().equals("kvm") ? new KvmBackend(kvm, host) : new MemfdBackend(sys);
  }

  @Provides
  @Singleton
  static HostMemory hostMemory(Sys sys, HostInfo host) {
    return new HostMemoryImpl(sys, host);
  }
}
