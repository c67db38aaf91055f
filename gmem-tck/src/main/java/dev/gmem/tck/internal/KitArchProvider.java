package dev.gmem.tck.internal;

import dev.gmem.api.HostInfo;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.ArchContext;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.HostMemory;
import dev.gmem.api.spi.Support;
import java.util.Set;

/** The vendor's arch provider as a kit runtime discovers it: same types, probe and hooks, recorded. */
public final class KitArchProvider implements ArchProvider {
  private final Session session = Session.building();

  @Override
  public String id() {
    return Session.ID;
  }

  @Override
  public Set<VmType> vmTypes() {
    return session == null || session.arch == null ? Set.of() : session.arch.vmTypes();
  }

  @Override
  public Support probe(HostInfo host) {
    if (session == null || session.arch == null) {
      return Support.no("gmem-tck's arch serves only the runtimes the kit builds");
    }
    return session.arch.probe(host);
  }

  @Override
  public ArchHooks create(VmType type, HostMemory host) {
    throw new IllegalStateException("core creates hooks with their ArchContext");
  }

  @Override
  public ArchHooks create(VmType type, HostMemory host, ArchContext vm) {
    RecordingContext context = new RecordingContext(vm, session.archLog);
    RecordingHooks hooks = new RecordingHooks(session.arch.create(type, host, context), context, session.archLog);
    session.hooks.add(hooks);
    return hooks;
  }
}
