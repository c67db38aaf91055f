package dev.gmem.core.vm;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vm;
import dev.gmem.core.file.GuestMemFileImpl;
import dev.gmem.core.inode.GuestMemInodeImpl;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.locks.Lock;

/**
 * {@code KVM_CAP_VM_MOVE_ENC_CONTEXT_FROM} as the {@code KVM_LINK_GUEST_MEMFD} RFC v2 extends it
 * ({@code kvm_vm_move_enc_context_from} + {@code kvm_move_memory_ctxt_from}): the kernel's checks
 * in its order, then a commit that cannot fail. Unlike the RFC, which marks the source dead before
 * the arch step may still refuse, the arch's veto comes before anything changes.
 */
final class ContextMove {
  private final VmImpl dst;
  private final VmImpl src;

  private ContextMove(VmImpl dst, VmImpl src) {
    this.dst = dst;
    this.src = src;
  }

  static void move(VmImpl dst, Vm source) {
    dst.checkUsable();
    if (!(source instanceof VmImpl) || !source.isOpen() || !dst.sameRuntime((VmImpl) source)) {
      throw new GmemException(Errno.EBADF, "the source is not an open VM of this runtime (not a KVM VM fd)");
    }
    VmImpl src = (VmImpl) source;
    if (src.type() != dst.type()) {
      throw GmemException.einval("cannot move a " + src.type() + " VM's context into a " + dst.type() + " VM");
    }
    if (src == dst) {
      throw GmemException.einval("a VM cannot move its context from itself");
    }
    if (!dst.context().beginMigration()) {
      throw new GmemException(Errno.EBUSY, "the destination VM is already in a migration");
    }
    try {
      if (!src.context().beginMigration()) {
        throw new GmemException(Errno.EBUSY, "the source VM is already in a migration");
      }
      try {
        new ContextMove(dst, src).locked();
      } finally {
        src.context().endMigration();
      }
    } finally {
      dst.context().endMigration();
    }
  }

  /** kvm_lock_two_vms, the memslot locks and every vCPU of both (in-flight ioctls finish first). */
  private void locked() {
    synchronized (dst) {
      synchronized (src) {
        dst.context().lockVcpus();
        try {
          src.context().lockVcpus();
          try {
            List<GuestMemInodeImpl> inodes = check();
            commit(inodes);
          } finally {
            src.context().unlockVcpus();
          }
        } finally {
          dst.context().unlockVcpus();
        }
      }
    }
  }

  /** Everything that can refuse; returns the inodes the matching memslots bind. */
  private List<GuestMemInodeImpl> check() {
    if (src.context().movedAway()) {
      // SEV's "!sev_guest(source)": the context already went to another VM.
      throw GmemException.einval("the source VM has no encryption context left: it was moved away already");
    }
    List<Memslot> from = layout(src);
    List<Memslot> to = layout(dst);
    if (from.size() != to.size()) {
      throw GmemException.einval("memslot layouts differ: " + from.size() + " slot(s) in the source, " + to.size() + " in the destination");
    }
    List<GuestMemInodeImpl> inodes = new ArrayList<>();
    for (int i = 0; i < from.size(); i++) {
      Memslot a = from.get(i);
      Memslot b = to.get(i);
      if (a.gpa() != b.gpa() || a.size() != b.size() || a.flags() != b.flags()) {
        throw GmemException.einval("memslot layouts differ at GPA 0x" + Long.toHexString(Math.min(a.gpa(), b.gpa())) + ": " + describe(a) + " vs " + describe(b));
      }
      // kvm_gmem_params_match: same offset, both files still open, one inode.
      GuestMemInodeImpl inode = ((GuestMemFileImpl) a.file()).inodeImpl();
      if (a.offset() != b.offset() || !a.file().isOpen() || !b.file().isOpen() || ((GuestMemFileImpl) b.file()).inodeImpl() != inode) {
        throw GmemException.einval("memslot at GPA 0x" + Long.toHexString(a.gpa()) + " binds different memory: " + describe(a) + " vs " + describe(b));
      }
      if (!inodes.contains(inode)) {
        inodes.add(inode);
      }
    }
    dst.arch().moveEncryptionContextFrom(src.arch());
    return inodes;
  }

  /** Address space 0 in GPA order, as {@code kvm_for_each_memslot_pair} walks it. */
  private static List<Memslot> layout(VmImpl vm) {
    List<Memslot> slots = new ArrayList<>();
    for (Memslot m : vm.memslots()) {
      if ((m.slot() >>> 16) == 0) {
        slots.add(m);
      }
    }
    slots.sort(Comparator.comparingLong(Memslot::gpa));
    return slots;
  }

  private static String describe(Memslot m) {
    return "[0x" + Long.toHexString(m.gpa()) + ", +0x" + Long.toHexString(m.size()) + ") flags " + m.flags() + " -> inode "
        + m.file().inode().ino() + " offset 0x" + Long.toHexString(m.offset()) + (m.file().isOpen() ? "" : " (file closed)");
  }

  /**
   * Under every moved inode's invalidate lock, so no guest fault is in flight through them: the
   * inodes' arch calls go to the destination's hooks, the destination may fault private memory and
   * run, the source is dead. Nothing here can fail.
   */
  private void commit(List<GuestMemInodeImpl> inodes) {
    inodes.sort(Comparator.comparingLong(GuestMemInodeImpl::ino));
    List<Lock> held = new ArrayList<>();
    try {
      for (GuestMemInodeImpl inode : inodes) {
        Lock l = inode.invalidateLock().writeLock();
        l.lock();
        held.add(l);
      }
      for (GuestMemInodeImpl inode : inodes) {
        inode.adoptArch(dst.arch());
      }
      dst.contextArrived();
      src.context().markMovedAway();
    } finally {
      for (Lock l : held) {
        l.unlock();
      }
    }
  }
}
