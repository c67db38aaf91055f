package dev.gmem.directmap;

import dev.gmem.api.Errno;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.spi.FaultInterceptor;
import dev.gmem.api.spi.Feature;
import dev.gmem.api.spi.FilemapListener;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.api.spi.HostMemory;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.WeakHashMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Direct-map removal for one runtime. A NO_DIRECT_MAP inode lives in {@code memfd_secret(2)}
 * memory (unless the kernel's guest_memfd takes the flag itself), so the kernel unmaps each page
 * from its own direct map at first fault and GUP fails on it; gmem's direct map of the inode
 * ({@link LinearMap}) loses each folio when it enters the filemap and gets it back when it leaves,
 * in v12's order — core calls {@code folioAdded} before the arch's prepare (zap, then prepare) and
 * {@code folioRemoved} after the arch's invalidate (invalidate, then restore). Pins of such pages
 * fail with EFAULT, as GUP does. Guest and VMM keep their user mappings (host mappings, memslot
 * {@code userspace_addr}), as upstream.
 */
final class DirectMapFeature implements Feature, DirectMap {
  final HostMemory host;
  private final Map<Long, LinearMap> inodes = new ConcurrentHashMap<>();
  /** NO_DIRECT_MAP inodes of this runtime, including those passed through to the kernel. */
  private final Set<Long> noDirectMap = ConcurrentHashMap.newKeySet();
  private final AtomicLong passedThrough = new AtomicLong();
  private final AtomicLong zaps = new AtomicLong();
  private final AtomicLong restores = new AtomicLong();
  private final AtomicLong splits = new AtomicLong();
  private final AtomicLong merges = new AtomicLong();
  private final AtomicLong refusedPins = new AtomicLong();
  private final AtomicLong releasedBytes = new AtomicLong();
  private final AtomicLong zapFailures = new AtomicLong();
  /** {@code mprotect} calls on the direct maps of evicted inodes. */
  private final AtomicLong viewProtects = new AtomicLong();
  private final Map<GmemRuntime, SecretVcpuProbe.Result> vcpuProbes = new WeakHashMap<>();

  DirectMapFeature(HostMemory host) {
    this.host = host;
  }

  private boolean kernelRemoves() {
    return host.host().guestMemfdSupports(GmemFlags.NO_DIRECT_MAP);
  }

  // ---- memory ---------------------------------------------------------------------------

  @Override
  public HostMemory.MemoryFile memory(long size, long flags) {
    throw new IllegalStateException("core asks for memory with the inode number");
  }

  /**
   * Secret memory for a NO_DIRECT_MAP inode, with gmem's direct map of it; null for other inodes,
   * and where the kernel removes the direct map itself (the flag then goes to the real
   * guest_memfd).
   */
  @Override
  public HostMemory.MemoryFile memory(long ino, long size, long flags) {
    if ((flags & GmemFlags.NO_DIRECT_MAP) == 0) {
      return null;
    }
    if (GmemFlags.hugePageLog2(flags) != 0) {
      throw GmemException.einval("NO_DIRECT_MAP with huge pages: v12 zaps only 4 KiB folios from the direct map");
    }
    noDirectMap.add(ino);
    if (kernelRemoves()) {
      passedThrough.incrementAndGet();
      return null;
    }
    HostMemory.MemoryFile secret = host.createSecretMemory(size);
    try {
      inodes.put(ino, new LinearMap(ino, size, secret));
    } catch (RuntimeException e) {
      secret.close();
      noDirectMap.remove(ino);
      throw e;
    }
    return secret;
  }

  // ---- the filemap listener ---------------------------------------------------------------

  private final FilemapListener listener = new FilemapListener() {
    @Override
    public void folioAdded(long ino, long flags, long index, int order) {
      foliosAdded(ino, flags, index, 1, order);
    }

    /** A run of folios: one zap over the run (no system call for pages never mapped). */
    @Override
    public void foliosAdded(long ino, long flags, long index, long nrFolios, int order) {
      LinearMap m = inodes.get(ino);
      if (m != null) {
        if (m.zap(index, nrFolios << order)) {
          zaps.addAndGet(nrFolios);
        } else {
          zapFailures.addAndGet(nrFolios);
        }
      }
    }

    @Override
    public void folioRemoved(long ino, long flags, long index, int order) {
      LinearMap m = inodes.get(ino);
      if (m != null && m.restore(index, 1L << order)) {
        restores.incrementAndGet();
      }
    }

    @Override
    public void folioSplit(long ino, long flags, long index, int order, int newOrder) {
      // Same pages, same memory: they stay removed; the per-page state needs no re-keying.
      if (inodes.containsKey(ino)) {
        splits.incrementAndGet();
      }
    }

    @Override
    public void folioMerged(long ino, long flags, long index, int order) {
      if (inodes.containsKey(ino)) {
        merges.incrementAndGet();
      }
    }

    @Override
    public void inodeEvicted(long ino, long flags) {
      noDirectMap.remove(ino);
      LinearMap m = inodes.remove(ino);
      if (m != null) {
        releasedBytes.addAndGet(m.accounting().resident() << Folio.PAGE_SHIFT);
        viewProtects.addAndGet(m.protects());
        m.close();
      }
    }
  };

  @Override
  public FilemapListener filemapListener() {
    return listener;
  }

  // ---- pins -----------------------------------------------------------------------------

  private final FaultInterceptor interceptor = new FaultInterceptor() {
    @Override
    public boolean interceptsAccesses() {
      return false; // pins only: accesses keep the lock-free path
    }

    @Override
    public void pin(GmemPage first, long nrPages) {
      if (noDirectMap.contains(first.ino())) {
        refusedPins.incrementAndGet();
        throw new GmemException(Errno.EFAULT, "pin of NO_DIRECT_MAP inode " + first.ino()
            + ": GUP fails on memory removed from the direct map");
      }
    }
  };

  @Override
  public FaultInterceptor faultInterceptor() {
    return interceptor;
  }

  // ---- the feature's API ------------------------------------------------------------------

  @Override
  public List<String> layers() {
    List<String> l = new ArrayList<>();
    if (kernelRemoves()) {
      l.add("kernel direct map: removed by the kernel's guest_memfd (GUEST_MEMFD_FLAG_NO_DIRECT_MAP passed through, kvm backend)");
    } else {
      l.add("kernel direct map: removed — NO_DIRECT_MAP inodes live in memfd_secret(2) memory on both backends;"
          + " GUP (vmsplice, process_vm_readv, pin()) fails with EFAULT");
      l.add("secret memory is freed only with its inode: a punched page is zeroed and stays charged (see accounting)");
    }
    l.add("gmem's direct map (its whole-file view of each such inode) maps a page only while secret memory holds it outside the filemap:"
        + " each folio removed at filemap add, restored at removal;"
        + " framework code reaches removed folios only through scoped temporary mappings");
    l.add("kept: user mappings (host mappings, memslot userspace_addr), through which the guest and the VMM access memory, as upstream");
    return l;
  }

  @Override
  public DirectMapStats stats() {
    long removed = 0;
    long resident = 0;
    long held = 0;
    long protects = viewProtects.get();
    for (LinearMap m : inodes.values()) {
      protects += m.protects();
      InodeAccounting a = m.accounting();
      removed += a.present();
      resident += a.resident();
      held += a.held();
    }
    return new DirectMapStats(inodes.size(), passedThrough.get(), removed, zaps.get(), restores.get(), splits.get(), merges.get(),
        refusedPins.get(), resident << Folio.PAGE_SHIFT, held << Folio.PAGE_SHIFT, releasedBytes.get(), zapFailures.get(),
        protects, host.temporaryMappingStats());
  }

  @Override
  public Optional<InodeAccounting> accounting(long ino) {
    LinearMap m = inodes.get(ino);
    return m == null ? Optional.empty() : Optional.of(m.accounting());
  }

  @Override
  public boolean isRemoved(long ino, long index) {
    LinearMap m = inodes.get(ino);
    return m != null && index >= 0 && index < m.nrPages && m.isRemoved(index);
  }

  /** Address of gmem's direct map of {@code ino} (tests probe it with syscalls only), or 0. */
  long linearAddress(long ino) {
    LinearMap m = inodes.get(ino);
    return m == null ? 0 : m.address();
  }

  @Override
  public dev.gmem.api.spi.TemporaryMapping mapTemporarily(long ino, long index, long nrPages) {
    return host.mapTemporarily(new GmemPage(ino, index), nrPages);
  }

  @Override
  public synchronized SecretVcpuProbe.Result realVcpu(GmemRuntime rt) {
    return vcpuProbes.computeIfAbsent(rt, SecretVcpuProbe::run);
  }
}
