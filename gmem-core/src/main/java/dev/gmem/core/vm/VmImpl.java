package dev.gmem.core.vm;

import dev.gmem.api.Errno;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.MapFlags;
import dev.gmem.api.GuestMemory;
import dev.gmem.api.Memslot;
import dev.gmem.api.Prot;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.Vcpu;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.Feature;
import dev.gmem.api.spi.KernelMemslot;
import dev.gmem.api.spi.FolioAllocator;
import dev.gmem.core.access.Rcu;
import dev.gmem.api.spi.HostMemory;
import dev.gmem.core.backend.BackendVm;
import dev.gmem.core.backend.MemoryFds;
import dev.gmem.core.file.GuestMemFileImpl;
import dev.gmem.core.inode.GuestMemInodeImpl;
import dev.gmem.core.inode.GuestView;
import dev.gmem.core.mapping.HostMappingImpl;
import dev.gmem.core.memslot.MemslotTable;
import dev.gmem.core.memslot.StageTwoView;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.vcpu.GuestFaultingVcpu;
import dev.gmem.core.vcpu.SoftwareVcpuImpl;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.Lock;

/** A VM: its backend state, arch hooks, files and memslots. */
public final class VmImpl implements Vm {
  private final VmType type;
  private final VmContext ctx;
  private final BackendVm backend;
  private final ArchHooks arch;
  private final MemslotTable memslots;
  private final AtomicBoolean open = new AtomicBoolean(true);
  private final java.util.function.Consumer<VmImpl> onClose;
  private final SoftwareVcpu softwareVcpu;
  private final CopyOnWriteArrayList<Vcpu> vcpus = new CopyOnWriteArrayList<>();
  /** Files linked into this VM, which may wait for a context move. */
  private final CopyOnWriteArrayList<GuestMemFileImpl> files = new CopyOnWriteArrayList<>();
  private final EncryptionContext context;
  private final VmArchContext archContext;
  private final GuestMemory guestMemory;

  private VmImpl(VmType type, VmContext ctx, BackendVm backend, ArchHooks arch, VmArchContext archContext,
      java.util.function.Consumer<VmImpl> onClose) {
    this.type = type;
    this.ctx = ctx;
    this.backend = backend;
    this.arch = arch;
    this.archContext = archContext;
    this.onClose = onClose;
    this.memslots = new MemslotTable(this, arch.hasPrivateMemory(), ctx.memslotLimits(), ctx.memslotFlags());
    this.context = new EncryptionContext(this::awaitingContext, archContext::deathReason, arch::vcpuPreRun);
    archContext.onDeath(context::markDead);
    SoftwareVcpuImpl vcpu = new SoftwareVcpuImpl(memslots, arch, context::checkRunnable, context::runnable);
    memslots.onChange(vcpu::forgetHint);
    context.onHeld(vcpu::forgetHint);
    this.softwareVcpu = vcpu;
    this.guestMemory = new GuestMemoryImpl(memslots, this::checkUsable);
  }

  /**
   * A VM of {@code type} over {@code backend}, with hooks from {@code provider} that report
   * through the VM's own {@link dev.gmem.api.spi.ArchContext}. Closes {@code backend} if the
   * provider fails.
   */
  public static VmImpl create(VmType type, VmContext ctx, ArchProvider provider, HostMemory host, BackendVm backend,
      java.util.function.Consumer<VmImpl> onClose) {
    VmArchContext archContext = new VmArchContext(type, ctx.inodes()::find);
    try {
      return new VmImpl(type, ctx, backend, provider.create(type, host, archContext), archContext, onClose);
    } catch (RuntimeException e) {
      backend.close();
      throw e;
    }
  }

  @Override
  public VmType type() {
    return type;
  }

  public ArchHooks arch() {
    return arch;
  }

  public BackendVm backend() {
    return backend;
  }

  public MemslotTable memslotTable() {
    return memslots;
  }

  /** EBADF once closed (the VM fd is gone), EIO once its context was moved away (dead VM). */
  void checkUsable() {
    if (!open.get()) {
      throw new GmemException(Errno.EBADF, "VM is closed");
    }
    context.checkAlive();
  }

  EncryptionContext context() {
    return context;
  }

  /** Dead: its context was moved away, or its arch hit {@code KVM_BUG_ON}. */
  @Override
  public boolean isDead() {
    return context.movedAway() || archContext.isDead();
  }

  @Override
  public <T> Optional<T> arch(Class<T> type) {
    return type.isInstance(arch) ? Optional.of(type.cast(arch)) : Optional.empty();
  }

  @Override
  public long populate(long gpa, ByteBuffer source, long npages, long flags) {
    checkUsable();
    return new Populate(this, arch).run(gpa, source, npages, flags);
  }

  @Override
  public void finalizeLaunch() {
    checkUsable();
    arch.finalizeLaunch();
  }

  @Override
  public GuestMemory guestMemory() {
    return guestMemory;
  }

  boolean sameRuntime(VmImpl other) {
    return other.ctx == ctx;
  }

  /** Whether this VM holds an open linked file no context move has reached yet. */
  private boolean awaitingContext() {
    files.removeIf(f -> !f.isOpen());
    for (GuestMemFileImpl f : files) {
      if (f.awaitingContext() && f.isOpen()) {
        return true;
      }
    }
    return false;
  }

  /** A context move into this VM committed: its linked files stop waiting. */
  void contextArrived() {
    for (GuestMemFileImpl f : files) {
      f.contextArrived();
    }
  }

  @Override
  public long supportedGuestMemFlags() {
    long f = GmemFlags.MMAP;
    if (arch.supportsInitShared()) {
      f |= GmemFlags.INIT_SHARED;
    }
    long contributed = ctx.contributedFlags();
    if (!arch.supportsNoDirectMap()) {
      contributed &= ~GmemFlags.NO_DIRECT_MAP;
    }
    return f | contributed;
  }

  @Override
  public GuestMemFile createGuestMemFile(long size, long flags) {
    checkUsable();
    long unsupported = flags & ~supportedGuestMemFlags();
    if (unsupported != 0) {
      throw GmemException.einval("unsupported guest_memfd flags " + GmemFlags.describe(unsupported) + " (this VM supports " + GmemFlags.describe(supportedGuestMemFlags()) + ")");
    }
    if (size <= 0 || (size & (Folio.PAGE_SIZE - 1)) != 0) {
      throw GmemException.einval("guest_memfd size " + size + " is not a positive multiple of the page size");
    }
    FolioAllocator allocator = ctx.allocatorFor().apply(flags);
    FolioAllocator.Inode alloc = allocator.setupInode(size, flags);
    Fd memory = null;
    long ino = ctx.nextIno().getAsLong();
    try {
      // Features are asked even where the allocator has memory: one may refuse the combination
      // (direct-map removal with huge pages); one that answers there conflicts with the allocator.
      memory = featureMemory(ino, size, flags);
      if (alloc.memory() != null) {
        if (memory != null) {
          throw GmemException.einval("flags " + GmemFlags.describe(flags) + ": both the allocator and a feature supply the memory");
        }
        memory = new Fd(ctx.sys(), ctx.sys().dup(alloc.memory().fd()), "allocator-memory");
      }
      boolean guestMemfd = memory == null;
      if (guestMemfd) {
        memory = backend.createMemory(size, flags);
      } else {
        MemoryFds.restrict(ctx.sys(), memory); // allocator or feature memory: a memfd of its own
      }
      GuestMemInodeImpl inode = new GuestMemInodeImpl(
          ino, size, flags, ctx.sys(), memory, alloc, arch, ctx.listeners(), ctx.interceptors(), guestMemfd);
      if (guestMemfd) {
        inode.passConversionsTo(backend.kernelAttributes());
      }
      ctx.inodes().add(inode);
      GuestMemFileImpl file = new GuestMemFileImpl(this, inode, ctx.inaccessible());
      return file;
    } catch (RuntimeException e) {
      if (memory != null) {
        memory.close();
      }
      alloc.close();
      // A feature may have set up state for the inode with its memory: the inode never lived.
      for (dev.gmem.api.spi.FilemapListener l : ctx.listeners()) {
        l.inodeEvicted(ino, flags);
      }
      throw e;
    }
  }

  /** What the first feature whose flags the kernel implements passes to it for this slot, or null (gmem implements them). */
  private KernelMemslot kernelMemslot(int slot, int flags, long size) {
    for (Feature f : ctx.features()) {
      KernelMemslot k = f.kernelMemslot(this, slot, flags, size);
      if (k != null) {
        return k;
      }
    }
    return null;
  }

  /** Memory the first feature that offers some supplies (dup'ed: the inode owns its fd), or null. */
  private Fd featureMemory(long ino, long size, long flags) {
    for (Feature f : ctx.features()) {
      try (HostMemory.MemoryFile m = f.memory(ino, size, flags)) {
        if (m != null) {
          return new Fd(ctx.sys(), ctx.sys().dup(m.fd()), "feature-memory");
        }
      }
    }
    return null;
  }

  @Override
  public synchronized GuestMemFile linkGuestMemFile(GuestMemFile src, long flags) {
    checkUsable();
    if (flags != 0) {
      throw GmemException.einval("KVM_LINK_GUEST_MEMFD flags 0x" + Long.toHexString(flags) + ": none are defined");
    }
    if (!(src instanceof GuestMemFileImpl) || !src.isOpen() || !(src.vm() instanceof VmImpl) || !sameRuntime((VmImpl) src.vm())) {
      throw GmemException.einval("the source is not an open guest_memfd of this runtime");
    }
    if (src.vm() == this) {
      throw GmemException.einval("the guest_memfd already belongs to this VM");
    }
    if (src.vm().type() != type) {
      throw GmemException.einval("cannot link a " + src.vm().type() + " VM's guest_memfd to a " + type + " VM");
    }
    GuestMemFileImpl source = (GuestMemFileImpl) src;
    GuestMemInodeImpl inode = source.inodeImpl();
    try {
      inode.acquire();
    } catch (GmemException e) {
      throw GmemException.einval("the source guest_memfd was closed");
    }
    Fd kernelFile = null;
    try {
      Fd sourceKernelFile = source.kernelGuestMemfd();
      kernelFile = sourceKernelFile == null ? null : backend.linkGuestMemfd(sourceKernelFile);
      GuestMemFileImpl file = GuestMemFileImpl.linked(this, inode, ctx.inaccessible(), kernelFile);
      files.add(file);
      return file;
    } catch (RuntimeException e) {
      if (kernelFile != null) {
        kernelFile.close();
      }
      inode.release();
      throw e;
    }
  }

  @Override
  public void moveEncryptionContextFrom(Vm source) {
    ContextMove.move(this, source);
  }

  /**
   * A memslot holds a reference on its file's inode, like a host mapping does, and a window of
   * gmem's over its file range, which the software vCPU copies through and which is its
   * {@code userspace_addr}: on hosts that serve guest accesses through {@code userspace_addr}
   * (kernel-uapi §4.9) an unmapped window could be reused by another file's mapping and the guest
   * would reach that file's memory. Window and reference go with the slot.
   *
   * <p>Where the arch's accesses carry their own private bit, the kernel (which on 6.18 sees all
   * memory shared) gets a mapping whose private pages are covered, as a host mapping's are, and the
   * slot is bound as plain user memory so that every kernel takes guest accesses through it:
   * a real vCPU's access to a private page then comes back and goes through gmem's fault path
   * ({@link GuestFaultingVcpu}), like the software vCPU's. Where that bit is a GPA bit (TDX's
   * shared bit), the slot's GPAs are the private ones, and the kernel gets the slot's private stage
   * 2 instead ({@link StageTwoView#privateStageTwo}, 4 KiB memory): only pages a private access was
   * let through to are mapped, so a private access to a shared page comes back too.
   *
   * <p>Where active features give meaning to memslot flags (KVM Userfault), a slot of 4 KiB memory
   * gets a {@link StageTwoView} as its {@code userspace_addr} instead, bound as plain user memory
   * for the same reason: setting such a flag, at creation or late, zaps it, and clearing it maps it
   * whole again, so that a real vCPU's faults reach the features as the software vCPU's do. Where
   * the kernel implements a feature's flag itself ({@link Feature#kernelMemslot}) the slot gets no
   * view: the flag bits and their fields go to the kernel, at creation and on every flags-only
   * update.
   */
  @Override
  public synchronized Memslot setMemoryRegion(int slot, int flags, long gpa, long size, GuestMemFile file, long offset) {
    checkUsable();
    MemslotTable.Change change = memslots.validate(slot, flags, gpa, size, file, offset);
    KernelMemslot passed = change == MemslotTable.Change.DELETE ? null : kernelMemslot(slot, flags, size);
    if (change == MemslotTable.Change.UPDATE) {
      MemslotTable.Binding old = memslots.binding(gpa);
      if (passed != null && old != null && !(old.kernelView() instanceof StageTwoView)) {
        // The kernel implements the feature's flag: the flags-only update is its own, first (a
        // refusal changes nothing).
        Fd kernelFile = old.kernelView() == null ? ((GuestMemFileImpl) file).kernelGuestMemfd() : null;
        long uaddr = old.kernelView() instanceof HostMappingImpl h ? h.address() : old.window().address(offset);
        backend.setMemoryRegion(slot, gpa, size, uaddr, kernelFile, offset, kernelFile != null, passed.flags(), passed.userfaultBitmap());
      }
      GuestMemInodeImpl updated = ((GuestMemFileImpl) file).inodeImpl();
      int oldFlags = memslots.all().stream().filter(m -> m.slot() == slot).findFirst().orElseThrow().flags();
      boolean wasIntercepted = intercepted(updated, oldFlags);
      if (!wasIntercepted && intercepted(updated, flags)) {
        updated.interceptedBinding(+1); // before the slot's new flags can be seen
      }
      MemslotTable.Binding b = memslots.apply(change, slot, flags, gpa, size, file, offset, null, null);
      if (wasIntercepted && !intercepted(updated, flags)) {
        updated.interceptedBinding(-1);
      }
      if (b.kernelView() instanceof StageTwoView view && !view.isPrivateStageTwo()) {
        if ((flags & memslots.featureFlags()) != 0) {
          view.zapAll(); // set, or changed while set: as KVM zaps the slot's stage-2 mappings
        } else {
          view.mapAll();
        }
      }
      return b.slot();
    }
    if (change == MemslotTable.Change.DELETE) {
      Memslot old = memslots.all().stream().filter(m -> m.slot() == slot).findFirst().orElseThrow();
      backend.setMemoryRegion(slot, old.gpa(), 0, 0, null, 0, false);
      return unbind(memslots.apply(change, slot, old.flags(), old.gpa(), 0, old.file(), old.offset(), null, null));
    }
    GuestMemInodeImpl inode = ((GuestMemFileImpl) file).inodeImpl();
    inode.acquire();
    GuestView.Window window = null;
    AutoCloseable kernelView = null;
    boolean intercepted = intercepted(inode, flags);
    try {
      if (intercepted) {
        inode.interceptedBinding(+1); // before a vCPU can reach the inode through the slot
      }
      window = inode.guestView().acquire(offset >>> Folio.PAGE_SHIFT, (offset + size) >>> Folio.PAGE_SHIFT);
      if (arch().sharedGpaBit() != 0 && inode.hostBlockOrder() == 0) {
        kernelView = StageTwoView.privateStageTwo(inode, offset, size);
      } else if (arch().privateBitInAccess()) {
        kernelView = HostMappingImpl.create(file, inode, ctx.inaccessible(), offset, size, Prot.READ_WRITE, MapFlags.SHARED);
      } else if (memslots.featureFlags() != 0 && inode.hostBlockOrder() == 0 && passed == null) {
        kernelView = StageTwoView.create(inode, offset, size, (flags & memslots.featureFlags()) != 0);
      }
      // Memory that is no guest_memfd of this VM to the kernel — an allocator's hugetlbfs memfd, or
      // a file linked where the kernel cannot link — and memory whose private pages the kernel must
      // not reach is bound as plain user memory, and gmem keeps the guest_memfd rules.
      Fd kernelFile = kernelView == null ? ((GuestMemFileImpl) file).kernelGuestMemfd() : null;
      long uaddr = kernelView instanceof HostMappingImpl h ? h.address()
          : kernelView instanceof StageTwoView v ? v.address() : window.address(offset);
      backend.setMemoryRegion(slot, gpa, size, uaddr, kernelFile, offset, kernelFile != null,
          passed == null ? 0 : passed.flags(), passed == null ? 0 : passed.userfaultBitmap());
    } catch (RuntimeException e) {
      if (kernelView != null) {
        try {
          kernelView.close();
        } catch (Exception suppressed) {
          e.addSuppressed(suppressed);
        }
      }
      if (window != null) {
        window.close(); // nobody copies through it yet
      }
      if (intercepted) {
        inode.interceptedBinding(-1);
      }
      inode.release();
      throw e;
    }
    return memslots.apply(change, slot, flags, gpa, size, file, offset, window, kernelView).slot();
  }

  /**
   * Whether a memslot of {@code flags} over {@code inode} makes its interceptors see every access
   * ({@link dev.gmem.api.spi.FaultInterceptor#accessMemslotFlags}: KVM Userfault's USERFAULT).
   */
  private static boolean intercepted(GuestMemInodeImpl inode, int flags) {
    return (flags & inode.faults().interceptedMemslotFlags()) != 0;
  }

  /**
   * A deleted slot's window goes once no software-vCPU access can be in flight through it. Those on
   * the lock-free path run inside RCU sections: the table's change cleared the vCPU's slot hint, a
   * lookup that raced with it clears its own late hint again inside its section, so two grace
   * periods cover every access that found the slot (SoftwareVcpuImpl#install says why two); the
   * slow path's lock-free attempt checks that the window is open, retired here first. Those on the
   * locked path hold the invalidate lock shared, under which this unmaps it. Then the slot's
   * reference.
   */
  private static Memslot unbind(MemslotTable.Binding deleted) {
    GuestMemInodeImpl inode = deleted.inode();
    deleted.window().retire();
    Rcu.GLOBAL.synchronize();
    Rcu.GLOBAL.synchronize();
    Lock lock = inode.invalidateLock().writeLock();
    lock.lock();
    try {
      deleted.window().close();
    } finally {
      lock.unlock();
    }
    if (deleted.kernelView() != null) {
      try {
        deleted.kernelView().close();
      } catch (Exception e) {
        throw new IllegalStateException(e);
      }
    }
    if (intercepted(inode, deleted.slot().flags())) {
      inode.interceptedBinding(-1); // no access reaches the inode through this slot any more
    }
    inode.release();
    return deleted.slot();
  }

  @Override
  public Vcpu createVcpu(int id) {
    checkUsable();
    Vcpu v = backend.createVcpu(id, context);
    if (arch().privateBitInAccess() || memslots.featureFlags() != 0) {
      v = new GuestFaultingVcpu(v, memslots, softwareVcpu, arch().sharedGpaBit());
    }
    vcpus.add(v);
    return v;
  }

  @Override
  public SoftwareVcpu softwareVcpu() {
    return softwareVcpu;
  }

  @Override
  public List<Memslot> memslots() {
    return memslots.all();
  }

  @Override
  public Memslot memslotAt(long gpa) {
    return memslots.lookup(gpa);
  }

  @Override
  public int maxMemslots() {
    return ctx.memslotLimits().slots();
  }

  @Override
  public boolean isOpen() {
    return open.get();
  }

  @Override
  public void close() {
    if (open.compareAndSet(true, false)) {
      for (Vcpu v : vcpus) {
        v.close();
      }
      backend.close();
      synchronized (this) {
        for (Memslot m : memslots.all()) {
          unbind(memslots.apply(MemslotTable.Change.DELETE, m.slot(), m.flags(), m.gpa(), 0, m.file(), m.offset(), null, null));
        }
      }
      onClose.accept(this);
    }
  }
}
