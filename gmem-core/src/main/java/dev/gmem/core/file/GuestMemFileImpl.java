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
import dev.gmem.core.inode.GuestMemInodeImpl;
import dev.gmem.core.mapping.HostMappingImpl;
import dev.gmem.core.mapping.InaccessibleMemory;
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

  private final Vm vm;
  private final GuestMemInodeImpl inode;
  private final InaccessibleMemory inaccessible;
  private final AtomicBoolean open = new AtomicBoolean(true);

  public GuestMemFileImpl(Vm vm, GuestMemInodeImpl inode, InaccessibleMemory inaccessible) {
    this.vm = vm;
    this.inode = inode;
    this.inaccessible = inaccessible;
    inode.addFile(this);
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
    checkOpen();
    // sys_mmap, ksys_mmap_pgoff and do_mmap's checks, then kvm_gmem_mmap's, in the kernel's order.
    if ((offset & (Folio.PAGE_SIZE - 1)) != 0 || offset < 0) {
      throw GmemException.einval("mmap offset 0x" + Long.toHexString(offset) + " not page aligned");
    }
    if ((mapFlags & MapFlags.HUGETLB) != 0) {
      throw GmemException.einval("MAP_HUGETLB is not valid for a guest_memfd mapping");
    }
    if (length <= 0) {
      throw GmemException.einval("mmap length " + length);
    }
    if (offset + length < 0) {
      throw new GmemException(Errno.EOVERFLOW, "mmap range overflows");
    }
    if ((mapFlags & MapFlags.FIXED) != 0) {
      throw GmemException.einval("gmem chooses mapping addresses; MAP_FIXED is not supported");
    }
    int type = mapFlags & MapFlags.SHARED_VALIDATE;
    if (type == 0) {
      throw GmemException.einval("mmap needs MAP_SHARED or MAP_PRIVATE");
    }
    if ((prot & Prot.EXEC) != 0) {
      throw new GmemException(Errno.EPERM, "guest_memfd lives on a noexec mount: PROT_EXEC refused");
    }
    if ((inode.flags() & GmemFlags.MMAP) == 0) {
      throw new GmemException(Errno.ENODEV, "file was created without GUEST_MEMFD_FLAG_MMAP");
    }
    if (type == MapFlags.PRIVATE) {
      throw GmemException.einval("guest_memfd mappings must be MAP_SHARED (copy-on-write is refused)");
    }
    return HostMappingImpl.create(this, inode, inaccessible, offset, length, prot, mapFlags);
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
  public boolean isOpen() {
    return open.get();
  }

  @Override
  public void close() {
    if (open.compareAndSet(true, false)) {
      inode.removeFile(this);
      inode.release();
    }
  }

  @Override
  public String toString() {
    return "GuestMemFile[ino " + inode.ino() + ", size 0x" + Long.toHexString(inode.size()) + ", " + GmemFlags.describe(inode.flags()) + (isOpen() ? "" : ", closed") + "]";
  }
}
