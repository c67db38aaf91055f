package dev.gmem.core.vm;

import dev.gmem.api.Errno;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.core.file.GuestMemFileImpl;
import dev.gmem.core.filemap.Filemap;
import dev.gmem.core.inode.FaultPath;
import dev.gmem.core.inode.GuestMemInodeImpl;
import dev.gmem.core.memslot.MemslotTable;
import java.nio.ByteBuffer;
import java.util.concurrent.locks.Lock;

/**
 * {@code kvm_gmem_populate}: the pages of one memslot from a GPA, each allocated, checked private
 * and not yet prepared, handed to the arch's post-populate callback with its source, and marked
 * prepared (the fault path then never prepares it again). Under the inode's invalidate lock held
 * exclusive, as upstream holds it, so no conversion or punch interleaves. A huge folio counts as
 * populated once any page of it was, as upstream marks the whole folio.
 */
final class Populate {
  private static final long PAGE = Folio.PAGE_SIZE;

  private final VmImpl vm;
  private final ArchHooks arch;

  Populate(VmImpl vm, ArchHooks arch) {
    this.vm = vm;
    this.arch = arch;
  }

  long run(long gpa, ByteBuffer source, long npages, long flags) {
    if ((gpa & (PAGE - 1)) != 0 || npages <= 0) {
      throw GmemException.einval("populate gpa 0x" + Long.toHexString(gpa) + " unaligned or npages " + npages + " not positive");
    }
    if (source != null && npages > source.remaining() / PAGE) {
      throw GmemException.einval("populate source holds " + source.remaining() + " bytes, " + npages + " pages requested");
    }
    MemslotTable.Binding binding = vm.memslotTable().binding(gpa);
    Memslot slot = binding == null ? null : binding.slot();
    if (slot == null) {
      throw GmemException.einval("populate gpa 0x" + Long.toHexString(gpa) + " is in no memslot");
    }
    arch.validatePopulate(gpa, npages, flags, source == null);
    if (!slot.file().isOpen()) {
      throw new GmemException(Errno.EFAULT, "the file of memslot " + slot.slot() + " was closed");
    }
    long n = Math.min(npages, (slot.gpa() + slot.size() - gpa) / PAGE); // kvm_gmem_populate stops at the slot's end
    GuestMemInodeImpl inode = ((GuestMemFileImpl) slot.file()).inodeImpl();
    long first = slot.fileOffset(gpa) / PAGE;
    Lock lock = inode.invalidateLock().writeLock();
    lock.lock();
    try {
      if (!binding.window().isOpen()) {
        throw GmemException.einval("populate gpa 0x" + Long.toHexString(gpa) + " is in no memslot (deleted meanwhile)");
      }
      long done = 0;
      // Secret memory left gmem's direct map when it entered the filemap: the arch reaches it
      // through one scoped temporary mapping for the call, never through the slot's window.
      try (PopulateTarget target = inode.secretMemory() ? new PopulateTarget.Temporary(inode, first, n)
          : new PopulateTarget.Window(binding.viewBase(), first, n)) {
        for (; done < n; done++) {
          try {
            if (!populateOne(inode, target, first + done, (gpa / PAGE) + done, source, done, flags, done == 0)) {
              break;
            }
          } catch (GmemException e) {
            if (done == 0) {
              throw e;
            }
            break;
          }
        }
      }
      if (source != null) {
        source.position(source.position() + (int) (done * PAGE));
      }
      return done;
    } finally {
      lock.unlock();
    }
  }

  /** One page; false when the arch stopped before it (an error on the first page of the call). */
  private boolean populateOne(GuestMemInodeImpl inode, PopulateTarget target, long index, long gfn, ByteBuffer source, long i, long flags, boolean first) {
    if (inode.shareabilityStore().get(index) != Shareability.PRIVATE) {
      throw GmemException.einval("populate: page at gfn 0x" + Long.toHexString(gfn) + " is not private");
    }
    FaultPath faults = inode.faults();
    Filemap filemap = inode.filemap();
    faults.ensureFolio(index);
    long folio = filemap.folioStart(index);
    if (filemap.isPrepared(folio) && (first || folio == index)) {
      throw new GmemException(Errno.EEXIST, "populate: page at gfn 0x" + Long.toHexString(gfn) + " is already prepared or populated");
    }
    ByteBuffer src = null;
    if (source != null) {
      int at = source.position() + (int) (i * PAGE);
      src = source.slice(at, (int) PAGE);
    }
    ByteBuffer page = target.open(index);
    boolean taken = false;
    try {
      if (!arch.postPopulate(faults.page(index), gfn, src, page, flags)) {
        if (first) {
          throw new GmemException(Errno.EAGAIN, "populate: the arch did not take the page at gfn 0x" + Long.toHexString(gfn) + "; retry");
        }
        return false;
      }
      taken = true;
    } finally {
      target.close(index, taken);
    }
    filemap.markPrepared(folio);
    return true;
  }
}
