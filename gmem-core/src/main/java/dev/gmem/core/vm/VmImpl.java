package dev.gmem.core.vm;

import dev.gmem.api.Errno;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.GuestMemory;
import dev.gmem.api.Memslot;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.Vcpu;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.Feature;
import dev.gmem.api.spi.FolioAllocator;
import dev.gmem.api.spi.HostMemory;
import dev.gmem.core.backend.BackendVm;
import dev.gmem.core.file.GuestMemFileImpl;
import dev.gmem.core.inode.GuestMemInodeImpl;
import dev.gmem.core.memslot.MemslotTable;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.vcpu.SoftwareVcpuImpl;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;

/** A VM: its backend state, arch hooks, files and memslots. */
public final class VmImpl implements Vm {
  private final VmType type;
  private final VmContext ctx;
  private final BackendVm backend;
  private final ArchHooks arch;
  private final MemslotTable memslots;
  private final CopyOnWriteArrayList<GuestMemFileImpl> files = new CopyOnWriteArrayList<>();
  private final AtomicBoolean open = new AtomicBoolean(true);
  private final java.util.function.Consumer<VmImpl> onClose;
  private final SoftwareVcpu softwareVcpu;
  private final CopyOnWriteArrayList<Vcpu> vcpus = new CopyOnWriteArrayList<>();
  private final GuestMemory guestMemory = new GuestMemoryImpl(this::memslotTable, this::checkLive);

  private final VmArchContext archContext;

  private VmImpl(VmType type, VmContext ctx, BackendVm backend, ArchHooks arch, VmArchContext archContext,
      java.util.function.Consumer<VmImpl> onClose) {
    this.type = type;
    this.ctx = ctx;
    this.backend = backend;
    this.arch = arch;
    this.archContext = archContext;
    this.onClose = onClose;
    this.memslots = new MemslotTable(this, arch.hasPrivateMemory(), ctx.memslotLimits(), ctx.memslotFlags());
    this.softwareVcpu = new SoftwareVcpuImpl(memslots, arch, this::checkLive);
  }

  /**
   * A VM of {@code type} over {@code backend}, with hooks from {@code provider} that report
   * through the VM's own {@link dev.gmem.api.spi.ArchContext}. Closes {@code backend} if the
   * provider fails.
   */
  public static VmImpl create(VmType type, VmContext ctx, ArchProvider provider, HostMemory host, BackendVm backend,
      java.util.function.Consumer<VmImpl> onClose) {
    VmArchContext archContext = new VmArchContext(type, ctx.inodes()::get);
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

  private void checkOpen() {
    if (!open.get()) {
      throw new GmemException(Errno.EBADF, "VM is closed");
    }
  }

  /** Open and not dead: EBADF, then EIO after {@code KVM_BUG_ON}. */
  public void checkLive() {
    checkOpen();
    if (archContext.isDead()) {
      throw new GmemException(Errno.EIO, type + " VM is dead: " + archContext.deathReason());
    }
  }

  @Override
  public boolean isDead() {
    return archContext.isDead();
  }

  @Override
  public <T> Optional<T> arch(Class<T> type) {
    return type.isInstance(arch) ? Optional.of(type.cast(arch)) : Optional.empty();
  }

  @Override
  public long populate(long gpa, ByteBuffer source, long npages, long flags) {
    checkLive();
    return new Populate(this, arch).run(gpa, source, npages, flags);
  }

  @Override
  public void finalizeLaunch() {
    checkLive();
    arch.finalizeLaunch();
  }

  @Override
  public GuestMemory guestMemory() {
    return guestMemory;
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
    checkLive();
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
    try {
      memory = alloc.memory() != null ? new Fd(ctx.sys(), ctx.sys().dup(alloc.memory().fd()), "allocator-memory") : featureMemory(size, flags);
      boolean guestMemfd = memory == null;
      if (guestMemfd) {
        memory = backend.createMemory(size);
      }
      GuestMemInodeImpl inode = new GuestMemInodeImpl(
          ctx.nextIno().getAsLong(), size, flags, ctx.sys(), memory, alloc, arch, ctx.listeners(), ctx.interceptors(), guestMemfd);
      ctx.inodes().put(inode.ino(), inode);
      GuestMemFileImpl file = new GuestMemFileImpl(this, inode, ctx.inaccessible());
      files.add(file);
      return file;
    } catch (RuntimeException e) {
      if (memory != null) {
        memory.close();
      }
      alloc.close();
      throw e;
    }
  }

  /** Memory the first feature that offers some supplies (dup'ed: the inode owns its fd), or null. */
  private Fd featureMemory(long size, long flags) {
    for (Feature f : ctx.features()) {
      try (HostMemory.MemoryFile m = f.memory(size, flags)) {
        if (m != null) {
          return new Fd(ctx.sys(), ctx.sys().dup(m.fd()), "feature-memory");
        }
      }
    }
    return null;
  }

  /**
   * A memslot holds a reference on its file's inode, like a host mapping does: its
   * {@code userspace_addr} is the inode's guest view, and on hosts that serve guest accesses
   * through {@code userspace_addr} (kernel-uapi §4.9) an unmapped view could be reused by another
   * file's mapping and the guest would reach that file's memory. The reference goes with the slot.
   */
  @Override
  public synchronized Memslot setMemoryRegion(int slot, int flags, long gpa, long size, GuestMemFile file, long offset) {
    checkLive();
    MemslotTable.Change change = memslots.validate(slot, flags, gpa, size, file, offset);
    if (change == MemslotTable.Change.DELETE) {
      Memslot old = memslots.all().stream().filter(m -> m.slot() == slot).findFirst().orElseThrow();
      backend.setMemoryRegion(slot, old.gpa(), 0, 0, null, 0, false);
      Memslot deleted = memslots.apply(change, slot, old.flags(), old.gpa(), 0, old.file(), old.offset());
      ((GuestMemFileImpl) old.file()).inodeImpl().release();
      return deleted;
    }
    if (change == MemslotTable.Change.UPDATE) {
      return memslots.apply(change, slot, flags, gpa, size, file, offset);
    }
    GuestMemInodeImpl inode = ((GuestMemFileImpl) file).inodeImpl();
    inode.acquire();
    try {
      long uaddr = inode.guestViewAddress() + offset;
      // Memory an allocator or a feature supplies (a hugetlbfs memfd, secret memory) is no
      // guest_memfd to the kernel: it is bound as plain user memory through the guest view, and
      // gmem keeps the guest_memfd rules.
      backend.setMemoryRegion(slot, gpa, size, uaddr, inode.memory(), offset, inode.isGuestMemfd());
    } catch (RuntimeException e) {
      inode.release();
      throw e;
    }
    return memslots.apply(change, slot, flags, gpa, size, file, offset);
  }

  @Override
  public Vcpu createVcpu(int id) {
    checkLive();
    Vcpu v = new VmVcpu(backend.createVcpu(id), this::checkLive);
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
  public int maxMemslots() {
    return ctx.memslotLimits().slots();
  }

  /** Files this VM created that are still open. */
  public List<GuestMemFileImpl> openFiles() {
    files.removeIf(f -> !f.isOpen());
    return List.copyOf(files);
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
          memslots.apply(MemslotTable.Change.DELETE, m.slot(), m.flags(), m.gpa(), 0, m.file(), m.offset());
          ((GuestMemFileImpl) m.file()).inodeImpl().release();
        }
      }
      onClose.accept(this);
    }
  }
}
