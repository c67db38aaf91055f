package dev.gmem.core.runtime;

import dev.gmem.api.BackendInfo;
import dev.gmem.api.DiscoveryReport;
import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.HostInfo;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.AllocatorProvider;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.Feature;
import dev.gmem.api.spi.FeatureProvider;
import dev.gmem.api.spi.FaultInterceptor;
import dev.gmem.api.spi.FilemapListener;
import dev.gmem.api.spi.FolioAllocator;
import dev.gmem.api.spi.HostMemory;
import dev.gmem.core.alloc.PageAllocator;
import dev.gmem.core.backend.Backend;
import dev.gmem.core.config.GmemConfig;
import dev.gmem.core.inode.LiveInodes;
import dev.gmem.core.mapping.InaccessibleMemory;
import dev.gmem.core.memslot.MemslotLimits;
import dev.gmem.core.plugin.PluginRegistry;
import dev.gmem.core.sys.Sys;
import dev.gmem.core.vm.VmContext;
import dev.gmem.core.vm.VmImpl;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import jakarta.inject.Inject;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** The runtime: owns the backend, the plugins' instances and every VM, file and mapping. */
final class GmemRuntimeImpl implements GmemRuntime {
  private static final Logger LOG = LoggerFactory.getLogger(GmemRuntimeImpl.class);

  private final GmemConfig config;
  private final HostInfo host;
  private final BackendInfo backendInfo;
  private final Backend backend;
  private final PluginRegistry plugins;
  private final HostMemory hostMemory;
  private final InaccessibleMemory inaccessible;
  private final VmContext vmContext;
  private final AtomicLong nextIno = new AtomicLong(1);
  private final Map<String, FolioAllocator> allocators = new ConcurrentHashMap<>();
  private final FolioAllocator pageAllocator = new PageAllocator();
  private final CopyOnWriteArrayList<VmImpl> vms = new CopyOnWriteArrayList<>();
  private final LiveInodes inodes = new LiveInodes();
  private final AtomicBoolean open = new AtomicBoolean(true);
  private final List<Feature> features = new ArrayList<>();

  @Inject
  GmemRuntimeImpl(
      GmemConfig config, HostInfo host, BackendInfo backendInfo, Backend backend, PluginRegistry plugins, HostMemory hostMemory, Sys sys,
      MemslotLimits memslotLimits) {
    this.config = config;
    this.host = host;
    String conversions = backend.conversionReport();
    this.backendInfo = conversions.isEmpty() ? backendInfo : new BackendInfo(backendInfo.name(), backendInfo.reason() + "; " + conversions);
    this.backend = backend;
    this.plugins = plugins;
    this.hostMemory = new dev.gmem.core.host.RuntimeHostMemory(hostMemory, inodes);
    this.inaccessible = new InaccessibleMemory(sys);
    List<FilemapListener> listeners = new ArrayList<>();
    List<FaultInterceptor> interceptors = new ArrayList<>();
    for (FeatureProvider fp : plugins.features()) {
      Feature f = fp.create(this.hostMemory);
      features.add(f);
      if (f.filemapListener() != null) {
        listeners.add(f.filemapListener());
      }
      if (f.faultInterceptor() != null) {
        interceptors.add(f.faultInterceptor());
      }
    }
    this.vmContext = new VmContext(
        sys, inaccessible, nextIno::getAndIncrement, this::allocatorFor, plugins.contributedFlags(), listeners, interceptors, memslotLimits,
        inodes, List.copyOf(features), plugins.features().stream().mapToInt(FeatureProvider::memslotFlags).reduce(0, (x, y) -> x | y));
    LOG.debug("gmem runtime: backend {} ({})", backendInfo.name(), backendInfo.reason());
  }

  private FolioAllocator allocatorFor(long flags) {
    Optional<AllocatorProvider> p = plugins.allocatorClaiming(flags).or(plugins::defaultAllocator);
    if (p.isEmpty()) {
      return pageAllocator;
    }
    return allocators.computeIfAbsent(p.get().id(), id -> p.get().create(hostMemory));
  }

  @Override
  public HostInfo host() {
    return host;
  }

  @Override
  public BackendInfo backend() {
    return backendInfo;
  }

  @Override
  public DiscoveryReport plugins() {
    return plugins.report();
  }

  @Override
  public Map<String, String> properties() {
    return config.properties();
  }

  @Override
  public Vm createVm(VmType type) {
    if (!open.get()) {
      throw new GmemException(Errno.EBADF, "runtime is closed");
    }
    ArchProvider arch = plugins.archFor(type).orElseThrow(() -> GmemException.einval(
        "no arch plugin serves VM type " + type + " (put its gmem-arch jar on the class path; found: " + plugins.report().ofKind(dev.gmem.api.PluginDescriptor.Kind.ARCH).stream().map(d -> d.id()).toList() + ")"));
    // A closed VM is forgotten: what its files left alive is in the runtime's live inodes.
    VmImpl vm = VmImpl.create(type, vmContext, arch, hostMemory, backend.createVm(type), vms::remove);
    vms.add(vm);
    return vm;
  }

  @Override
  public <T> Optional<T> feature(Class<T> type) {
    return features.stream().filter(type::isInstance).map(type::cast).findFirst();
  }

  /**
   * Releases everything reachable from the runtime: VMs (vCPUs, memslots), then every inode's
   * mappings, pins and files — also those whose file or VM the caller closed first — so that each
   * inode is evicted; then the backend and the SIGBUS memory.
   */
  @Override
  public void close() {
    if (!open.compareAndSet(true, false)) {
      return;
    }
    for (VmImpl vm : List.copyOf(vms)) {
      vm.close();
    }
    vms.clear();
    inodes.releaseAll();
    backend.close();
    inaccessible.close();
  }
}
