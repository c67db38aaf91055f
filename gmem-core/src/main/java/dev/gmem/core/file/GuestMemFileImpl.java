package dev.gmem.core.file;

import dev.gmem.api.Errno;
import dev.gmem.api.Fallocate;
import dev.gmem.api.FileStat;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.GuestMemInode;
import dev.gmem.api.HostMapping;
import dev.gmem.api.MapFlags;
import dev.gmem.api.Pin;
import dev.gmem.api.Prot;
import dev.gmem.api.Shareability;
import dev.gmem.api.Vm;
import dev.gmem.core.access.FastPageTable;
import dev.gmem.core.inode.GuestMemInodeImpl;
import dev.gmem.core.mapping.HostMappingImpl;
import dev.gmem.core.mapping.InaccessibleMemory;
import dev.gmem.core.mapping.Placement;
import dev.gmem.core.sys.Fd;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * One VM's view of an inode (upstream {@code struct gmem_file}). Validates every call in the
 * kernel's order before anything changes.
 */
public final class GuestMemFileImpl implements GuestMemFile {
  /** {@code S_IFREG | 0600}, what fstat reports for a guest_memfd. */
  public static final int MODE = 0100600;

  /** {@code FALLOC_FL_SUPPORTED_MASK}: every mode bit the VFS knows (NO_HIDE_STALE is not one of them). */
  private static final int VFS_VALID_MODES = Fallocate.KEEP_SIZE | Fallocate.PUNCH_HOLE | Fallocate.COLLAPSE_RANGE
      | Fallocate.ZERO_RANGE | Fallocate.INSERT_RANGE | Fallocate.UNSHARE_RANGE | Fallocate.WRITE_ZEROES;

  /** {@code MAP_TYPE}: the sharing type field of the mmap flags. */
  private static final int MAP_TYPE = 0x0f;
  private static final int MAP_GROWSDOWN = 0x0100;
  /**
   * {@code LEGACY_MAP_MASK} of x86-64: the flags every file accepts; MAP_SHARED_VALIDATE refuses any
   * other (guest_memfd has no MAP_SYNC), MAP_SHARED ignores them.
   */
  private static final int LEGACY_MAP_MASK = 0x7c07f9f3;

  private final Vm vm;
  private final GuestMemInodeImpl inode;
  private final InaccessibleMemory inaccessible;
  private final AtomicBoolean open = new AtomicBoolean(true);
  /** The real guest_memfd of this VM the kernel binds, or null where it binds plain memory. */
  private final Fd kernelFile;
  /** A linked file's memory may not be faulted private until a context move reaches its VM. */
  private volatile boolean awaitingContext;
  /**
   * Open and not awaiting its context: what the software vCPU's lock-free path checks, one load
   * instead of three. Both parts only ever clear, each under this object's monitor, so a late
   * {@link #contextArrived} cannot set it again after {@link #close}.
   */
  private volatile boolean guestReachable;
  /**
   * {@link #guestReachable} as the inode's {@linkplain FastPageTable#plane guest planes} (a
   * reachable file of a small inode), {@link #NO_PAGES} (unreachable) or null (a reachable file of
   * a large inode, which has no planes): the software vCPU's lock-free path answers "reachable and
   * mapped" with the plane's load and its word, written together with {@link #guestReachable}.
   */
  private volatile long[] guestSharedPlane;
  private volatile long[] guestPrivatePlane;

  /** A plane that maps no page. */
  private static final long[] NO_PAGES = new long[0];

  /** The file a VM creates with its inode; the inode's first reference is this file's. */
  public GuestMemFileImpl(Vm vm, GuestMemInodeImpl inode, InaccessibleMemory inaccessible) {
    this(vm, inode, inaccessible, inode.isGuestMemfd() ? inode.memory() : null, false);
  }

  private GuestMemFileImpl(Vm vm, GuestMemInodeImpl inode, InaccessibleMemory inaccessible, Fd kernelFile, boolean linked) {
    this.vm = vm;
    this.inode = inode;
    this.inaccessible = inaccessible;
    this.kernelFile = kernelFile;
    this.awaitingContext = linked;
    setGuestReachable(!linked);
    inode.addFile(this);
  }

  /**
   * {@code KVM_LINK_GUEST_MEMFD}'s new view of {@code inode} for {@code vm}, taking over a reference
   * the caller acquired; {@code kernelFile} is the kernel's linked guest_memfd, owned from now on,
   * or null where the kernel has no link.
   */
  public static GuestMemFileImpl linked(Vm vm, GuestMemInodeImpl inode, InaccessibleMemory inaccessible, Fd kernelFile) {
    return new GuestMemFileImpl(vm, inode, inaccessible, kernelFile, true);
  }

  /** The real guest_memfd of this file's VM for {@code KVM_MEM_GUEST_MEMFD} bindings, or null. */
  public Fd kernelGuestMemfd() {
    return kernelFile;
  }

  /** Whether this is a linked file whose VM has not received the memory's encryption context yet. */
  public boolean awaitingContext() {
    return awaitingContext;
  }

  /** A context move into this file's VM committed. */
  public synchronized void contextArrived() {
    awaitingContext = false;
    setGuestReachable(open.get());
  }

  private void setGuestReachable(boolean reachable) {
    guestReachable = reachable;
    FastPageTable t = inode.fastPages();
    guestSharedPlane = reachable ? t.plane(FastPageTable.Kind.GUEST_SHARED) : NO_PAGES;
    guestPrivatePlane = reachable ? t.plane(FastPageTable.Kind.GUEST_PRIVATE) : NO_PAGES;
  }

  /**
   * The plane a guest access of this kind may take lock-free while the file is
   * {@linkplain #guestReachable reachable}: empty when it is not, null for a large inode (look up
   * {@link GuestMemInodeImpl#fastPages()} after {@link #guestReachable}). Inside an RCU read-side
   * section; whoever makes the file unreachable waits for a grace period before it matters.
   */
  public long[] guestPlane(boolean privateAccess) {
    return privateAccess ? guestPrivatePlane : guestSharedPlane;
  }

  /** {@link #isOpen()} and not {@link #awaitingContext()}, in one load. */
  public boolean guestReachable() {
    return guestReachable;
  }

  private void checkOpen() {
    if (!open.get()) {
      throw new GmemException(Errno.EBADF, "guest_memfd file of inode " + inode.ino() + " is closed");
    }
  }

  @Override
  public Vm vm() {
    return vm;
  }

  @Override
  public GuestMemInode inode() {
    return inode;
  }

  /** The implementation object, for core code. */
  public GuestMemInodeImpl inodeImpl() {
    return inode;
  }

  @Override
  public long size() {
    return inode.size();
  }

  @Override
  public long flags() {
    return inode.flags();
  }

  @Override
  public FileStat stat() {
    checkOpen();
    return new FileStat(inode.size(), Folio.PAGE_SIZE, inode.ino(), MODE);
  }

  @Override
  public void fallocate(int mode, long offset, long length) {
    checkOpen();
    // vfs_fallocate, then kvm_gmem_fallocate, in that order.
    if (offset < 0 || length <= 0) {
      throw GmemException.einval("fallocate offset " + offset + " / length " + length);
    }
    if ((mode & ~VFS_VALID_MODES) != 0) {
      throw new GmemException(Errno.EOPNOTSUPP, "fallocate mode 0x" + Integer.toHexString(mode));
    }
    boolean keep = (mode & Fallocate.KEEP_SIZE) != 0;
    switch (mode & ~Fallocate.KEEP_SIZE) {
      case 0:
      case Fallocate.UNSHARE_RANGE:
      case Fallocate.ZERO_RANGE:
        break;
      case Fallocate.PUNCH_HOLE:
        if (!keep) {
          throw new GmemException(Errno.EOPNOTSUPP, "PUNCH_HOLE requires KEEP_SIZE");
        }
        break;
      case Fallocate.COLLAPSE_RANGE:
      case Fallocate.INSERT_RANGE:
      case Fallocate.WRITE_ZEROES:
        if (keep) {
          throw new GmemException(Errno.EOPNOTSUPP, "fallocate mode 0x" + Integer.toHexString(mode) + " cannot keep the size");
        }
        break;
      default:
        throw new GmemException(Errno.EOPNOTSUPP, "fallocate mode 0x" + Integer.toHexString(mode) + " combines exclusive operations");
    }
    if (offset + length < 0) {
      throw new GmemException(Errno.EFBIG, "fallocate range overflows");
    }
    if ((mode & Fallocate.KEEP_SIZE) == 0) {
      throw new GmemException(Errno.EOPNOTSUPP, "guest_memfd size is immutable: KEEP_SIZE required");
    }
    if ((mode & ~(Fallocate.KEEP_SIZE | Fallocate.PUNCH_HOLE)) != 0) {
      throw new GmemException(Errno.EOPNOTSUPP, "guest_memfd supports only KEEP_SIZE and PUNCH_HOLE, not mode 0x" + Integer.toHexString(mode));
    }
    if ((offset & (Folio.PAGE_SIZE - 1)) != 0 || (length & (Folio.PAGE_SIZE - 1)) != 0) {
      throw GmemException.einval("fallocate range [0x" + Long.toHexString(offset) + ", +0x" + Long.toHexString(length) + ") not page aligned");
    }
    if ((mode & Fallocate.PUNCH_HOLE) == 0 && offset + length > inode.size()) {
      throw GmemException.einval("allocation [0x" + Long.toHexString(offset) + ", +0x" + Long.toHexString(length) + ") beyond EOF 0x" + Long.toHexString(inode.size()));
    }
    inode.holePunch().fallocate(mode, offset, length);
  }

  @Override
  public HostMapping map(long offset, long length, int prot, int mapFlags) {
    return map(0, offset, length, prot, mapFlags);
  }

  @Override
  public HostMapping map(long address, long offset, long length, int prot, int mapFlags) {
    // sys_mmap, ksys_mmap_pgoff, do_mmap (its address-space checks answered by the kernel itself,
    // see Placement), then kvm_gmem_mmap: the kernel's order.
    if ((offset & (Folio.PAGE_SIZE - 1)) != 0) {
      throw GmemException.einval("mmap offset 0x" + Long.toHexString(offset) + " not page aligned");
    }
    checkOpen();
    if ((mapFlags & MapFlags.HUGETLB) != 0) {
      throw GmemException.einval("MAP_HUGETLB is not valid for a guest_memfd mapping");
    }
    long block = Folio.PAGE_SIZE << inode.hostBlockOrder();
    long regionLength = block == Folio.PAGE_SIZE ? length : (length + block - 1) & -block; // hugetlbfs rounds up
    if (regionLength == 0) {
      throw GmemException.einval("mmap length " + length);
    }
    Placement where = Placement.reserve(inode.sys(), address, regionLength, mapFlags, block);
    try {
      long pageLength = (length + Folio.PAGE_SIZE - 1) & -Folio.PAGE_SIZE;
      if (offset < 0 || offset + pageLength < 0) {
        throw new GmemException(Errno.EOVERFLOW, "mmap range [0x" + Long.toHexString(offset) + ", +0x" + Long.toHexString(length) + ") beyond the largest file offset");
      }
      int type = mapFlags & MAP_TYPE;
      if (type != MapFlags.SHARED && type != MapFlags.PRIVATE && type != MapFlags.SHARED_VALIDATE) {
        throw GmemException.einval("mmap sharing type 0x" + Integer.toHexString(type) + ": MAP_SHARED, MAP_SHARED_VALIDATE or MAP_PRIVATE");
      }
      if (type == MapFlags.SHARED_VALIDATE && (mapFlags & ~LEGACY_MAP_MASK) != 0) {
        throw new GmemException(Errno.EOPNOTSUPP, "MAP_SHARED_VALIDATE: guest_memfd does not know flags 0x" + Integer.toHexString(mapFlags & ~LEGACY_MAP_MASK));
      }
      if ((prot & Prot.EXEC) != 0) {
        throw new GmemException(Errno.EPERM, "guest_memfd lives on a noexec mount: PROT_EXEC refused");
      }
      if ((mapFlags & MAP_GROWSDOWN) != 0) {
        throw GmemException.einval("MAP_GROWSDOWN is for stacks, not for a file mapping");
      }
      if ((inode.flags() & GmemFlags.MMAP) == 0) {
        throw new GmemException(Errno.ENODEV, "file was created without GUEST_MEMFD_FLAG_MMAP");
      }
      if (type == MapFlags.PRIVATE) {
        throw GmemException.einval("guest_memfd mappings must be MAP_SHARED (copy-on-write is refused)");
      }
    } catch (RuntimeException e) {
      where.release();
      throw e;
    }
    return HostMappingImpl.create(this, inode, inaccessible, where, offset, length, prot, mapFlags);
  }

  @Override
  public void setShareability(long offset, long length, Shareability target) {
    checkOpen();
    inode.convert(offset, length, target);
  }

  @Override
  public Pin pin(long offset, long length) {
    checkOpen();
    if (length <= 0 || offset < 0 || ((offset | length) & (Folio.PAGE_SIZE - 1)) != 0 || offset + length < 0) {
      throw GmemException.einval("pin range [0x" + Long.toHexString(offset) + ", +0x" + Long.toHexString(length) + ") empty or unaligned");
    }
    if (offset + length > inode.size()) {
      throw new GmemException(Errno.EFAULT, "pin range beyond EOF");
    }
    return inode.pins().pin(offset >>> Folio.PAGE_SHIFT, length >>> Folio.PAGE_SHIFT);
  }

  @Override
  public long write(long offset, java.nio.ByteBuffer src) {
    checkOpen();
    if ((inode.flags() & GmemFlags.WRITE) == 0) {
      if ((vm.supportedGuestMemFlags() & GmemFlags.WRITE) != 0) {
        throw new GmemException(Errno.ENODEV, "write() on a guest_memfd created without GUEST_MEMFD_FLAG_WRITE");
      }
      throw GmemException.einval("write() on a guest_memfd: Linux 6.18 has no write operation for it");
    }
    long length = src.remaining();
    if (length == 0) {
      return 0;
    }
    if (offset < 0 || offset + length < 0 || offset + length > inode.size()) {
      throw GmemException.einval("write of [0x" + Long.toHexString(offset) + ", +0x" + Long.toHexString(length) + ") beyond EOF");
    }
    if (((offset | length) & (Folio.PAGE_SIZE - 1)) != 0) {
      throw GmemException.einval("write of [0x" + Long.toHexString(offset) + ", +0x" + Long.toHexString(length) + ") not page aligned");
    }
    return inode.faults().write(offset >>> Folio.PAGE_SHIFT, src);
  }

  @Override
  public boolean isOpen() {
    return open.get();
  }

  @Override
  public void close() {
    if (open.compareAndSet(true, false)) {
      synchronized (this) {
        setGuestReachable(false);
      }
      inode.removeFile(this);
      if (kernelFile != null && kernelFile != inode.memory()) {
        kernelFile.close();
      }
      inode.release();
    }
  }

  @Override
  public String toString() {
    return "GuestMemFile[ino " + inode.ino() + ", size 0x" + Long.toHexString(inode.size()) + ", " + GmemFlags.describe(inode.flags()) + (isOpen() ? "" : ", closed") + "]";
  }
}
