package dev.gmem.core.spi;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.Prot;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.spi.FaultInterceptor;
import dev.gmem.api.spi.Feature;
import dev.gmem.api.spi.FeatureProvider;
import dev.gmem.api.spi.FilemapListener;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.api.spi.GuestFault;
import dev.gmem.api.spi.HostMemory;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A fixture feature that uses every 0.2 feature hook: it supplies the memory of inodes created
 * with {@link #SUPPLIED} (a memfd of its own, which it keeps a mapping of, as a secret-memory
 * feature would), hears of splits and merges, sees each guest fault with its VM and memslot (and
 * turns faults on chosen pages into USERFAULT exits), and refuses pins of chosen pages as GUP
 * refuses memory without a direct map. Reached through {@code runtime.feature(FixtureFeature.class)}.
 */
public final class FixtureFeature implements Feature, FilemapListener, FaultInterceptor {
  /** The creation flag this feature gives meaning to. */
  public static final long SUPPLIED = 1L << 40;
  /** The memslot flag this feature gives meaning to ({@code KVM_MEM_USERFAULT}): 4 KiB mappings only while set. */
  public static final int USERFAULT = 1 << 3;

  /** The provider, registered only through {@link SpiFixtures}. */
  public static final class Provider implements FeatureProvider {
    @Override
    public String id() {
      return "spi-fixture-feature";
    }

    @Override
    public long creationFlags() {
      return SUPPLIED;
    }

    @Override
    public int memslotFlags() {
      return USERFAULT;
    }

    @Override
    public Feature create(HostMemory host) {
      return new FixtureFeature(host);
    }
  }

  private final HostMemory host;
  private final List<HostMemory.Mapping> supplied = Collections.synchronizedList(new ArrayList<>());
  private final List<String> events = Collections.synchronizedList(new ArrayList<>());
  private final Set<GmemPage> userfault = ConcurrentHashMap.newKeySet();
  private final Set<GmemPage> unpinnable = ConcurrentHashMap.newKeySet();
  private volatile GuestFault lastGuestFault;

  FixtureFeature(HostMemory host) {
    this.host = host;
  }

  /** The feature's own mappings of the memory it supplied, in creation order. */
  public List<HostMemory.Mapping> supplied() {
    return List.copyOf(supplied);
  }

  public List<String> events() {
    synchronized (events) {
      return List.copyOf(events);
    }
  }

  public GuestFault lastGuestFault() {
    return lastGuestFault;
  }

  public void userfault(GmemPage page) {
    userfault.add(page);
  }

  public void refusePins(GmemPage page) {
    unpinnable.add(page);
  }

  @Override
  public FilemapListener filemapListener() {
    return this;
  }

  @Override
  public FaultInterceptor faultInterceptor() {
    return this;
  }

  @Override
  public HostMemory.MemoryFile memory(long size, long flags) {
    if ((flags & SUPPLIED) == 0) {
      return null;
    }
    HostMemory.MemoryFile m = host.createMemfd("spi-fixture-feature", 1 /* MFD_CLOEXEC */, size);
    supplied.add(m.map(0, size, Prot.READ_WRITE, 0));
    return m;
  }

  @Override
  public void folioSplit(long ino, long flags, long index, int order, int newOrder) {
    events.add("split " + index + " " + order + "->" + newOrder);
  }

  @Override
  public void folioMerged(long ino, long flags, long index, int order) {
    events.add("merge " + index + " ->" + order);
  }

  @Override
  public long guestFault(GuestFault fault) {
    lastGuestFault = fault;
    return userfault.contains(fault.page()) ? VcpuExit.MemoryFault.FLAG_USERFAULT : 0;
  }

  @Override
  public int maxMappingOrder(GuestFault fault) {
    return (fault.slot().flags() & USERFAULT) != 0 ? 0 : 18;
  }

  @Override
  public void hostFault(GmemPage page, boolean write) {
    events.add("hostFault " + page + (write ? " write" : " read"));
  }

  @Override
  public void pin(GmemPage first, long nrPages) {
    for (long i = 0; i < nrPages; i++) {
      if (unpinnable.contains(first.plus(i))) {
        throw new GmemException(Errno.EFAULT, "fixture: " + first.plus(i) + " has no direct map, GUP fails");
      }
    }
    events.add("pin " + first + " +" + nrPages);
  }

  @Override
  public void unpin(GmemPage first, long nrPages) {
    events.add("unpin " + first + " +" + nrPages);
  }
}
