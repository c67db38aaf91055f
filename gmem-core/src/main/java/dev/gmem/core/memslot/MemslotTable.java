package dev.gmem.core.memslot;

import dev.gmem.api.Errno;
import dev.gmem.api.Folio;
import dev.gmem.api.GmemException;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vm;
import dev.gmem.core.access.FastPageTable;
import dev.gmem.core.file.GuestMemFileImpl;
import dev.gmem.core.inode.GuestView;
import dev.gmem.core.inode.GuestMemInodeImpl;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.TreeMap;

/**
 * A VM's memslots with the kernel's validation order ({@code kvm_set_memory_region}, then
 * {@code kvm_gmem_bind}). Lookups by GPA read an immutable snapshot, so the vCPU path takes no lock.
 */
public final class MemslotTable {
  /** {@code KVM_USER_MEM_SLOTS} on x86. */
  public static final int USER_MEM_SLOTS = 32764;
  /** {@code KVM_MEM_MAX_NR_PAGES}. */
  public static final long MAX_NR_PAGES = (1L << 31) - 1;

  private static final int VALID_FLAGS = Memslot.LOG_DIRTY_PAGES | Memslot.READONLY | Memslot.GUEST_MEMFD;
  private static final long PAGE_MASK = Folio.PAGE_SIZE - 1;

  private final Vm vm;
  private final int validFlags;
  private final int featureFlags;
  private final int addressSpaces;
  private final int slotIds;
  private final long maxGfn;
  private final TreeMap<Integer, Memslot> slots = new TreeMap<>();
  private final java.util.HashMap<Integer, Binding> bindings = new java.util.HashMap<>();
  private volatile Binding[] byGpa = new Binding[0];
  /** Bumped by every applied change, like KVM's memslot generation: a cached binding is valid only within one. */
  private volatile long generation;
  /** Told after every bump: the software vCPU drops its hint, so that its lock-free path need not read the generation. */
  private volatile Runnable onChange = () -> {};

  /**
   * A slot with what the software vCPU needs on every access resolved once, when the slot is
   * created (fewer dependent loads on its lock-free path): its file and inode, the inode's fast page
   * table, the window the software vCPU copies through ({@code viewBase}: where file byte 0 would
   * be) and — where the kernel must not reach every page of the slot — the mapping the kernel is
   * given as {@code userspace_addr} instead; null where the kernel is given the window; and
   * {@code fileDelta}, the slot's file offset less its GPA, so that {@link #fileOffset} is one add.
   */
  public record Binding(long gpa, long size, Memslot slot, GuestMemFileImpl file, GuestMemInodeImpl inode, FastPageTable fastPages,
      GuestView.Window window, long viewBase, AutoCloseable kernelView, long fileDelta) {
    static Binding of(Memslot m, GuestView.Window window, AutoCloseable kernelView) {
      GuestMemFileImpl f = (GuestMemFileImpl) m.file();
      return new Binding(m.gpa(), m.size(), m, f, f.inodeImpl(), f.inodeImpl().fastPages(), window, window.address(0), kernelView,
          m.offset() - m.gpa());
    }

    /** The file offset that backs {@code address}. */
    public long fileOffset(long address) {
      return address + fileDelta;
    }
  }

  /**
   * {@code privateMemory}: VMs with private memory have one address space
   * ({@code kvm_arch_nr_memslot_as_ids}); others have {@link MemslotLimits#addressSpaces()}.
   */
  public MemslotTable(Vm vm, boolean privateMemory, MemslotLimits limits) {
    this(vm, privateMemory, limits, 0);
  }

  /** @param featureFlags memslot flags active features give meaning to (KVM Userfault's USERFAULT) */
  public MemslotTable(Vm vm, boolean privateMemory, MemslotLimits limits, int featureFlags) {
    this.vm = vm;
    this.featureFlags = featureFlags & ~VALID_FLAGS;
    this.validFlags = VALID_FLAGS | this.featureFlags;
    this.addressSpaces = privateMemory ? 1 : limits.addressSpaces();
    this.slotIds = limits.slots();
    this.maxGfn = (1L << (limits.maxGpaBits() - Folio.PAGE_SHIFT)) - 1;
  }

  /**
   * The table's generation: changes with every applied change (an update of a slot's flags
   * included, which keeps the slot's window but replaces its binding). Lock-free.
   */
  public long generation() {
    return generation;
  }

  /** Runs {@code r} after every applied change (the generation already bumped). */
  public void onChange(Runnable r) {
    this.onChange = r;
  }

  /** Memslot flag bits active features give meaning to. */
  public int featureFlags() {
    return featureFlags;
  }

  /** What a validated change does. */
  public enum Change {
    CREATE,
    DELETE,
    /** Only feature flags of an existing slot change (the late toggle): nothing reaches the kernel. */
    UPDATE
  }

  /**
   * Validates a {@code KVM_SET_USER_MEMORY_REGION2} call; returns the change, nothing applied yet.
   * Call under the VM's memslot lock, then {@link #apply}.
   */
  public synchronized Change validate(int slot, int flags, long gpa, long size, GuestMemFile file, long offset) {
    if ((flags & ~validFlags) != 0) {
      throw GmemException.einval("unknown memslot flags 0x" + Integer.toHexString(flags));
    }
    if ((flags & Memslot.GUEST_MEMFD) != 0 && (flags & (Memslot.LOG_DIRTY_PAGES | Memslot.READONLY)) != 0) {
      throw GmemException.einval("KVM_MEM_GUEST_MEMFD is incompatible with LOG_DIRTY_PAGES and READONLY");
    }
    int as = slot >>> 16;
    int id = slot & 0xffff;
    if (as >= addressSpaces || id >= slotIds) {
      throw GmemException.einval("slot id " + id + " in address space " + as + " out of range");
    }
    if ((size & PAGE_MASK) != 0 || (gpa & PAGE_MASK) != 0) {
      throw GmemException.einval("memslot size 0x" + Long.toHexString(size) + " / gpa 0x" + Long.toHexString(gpa) + " not page aligned");
    }
    // gmem passes its own mapping + offset as userspace_addr when binding (0 when deleting): an
    // unaligned offset is an unaligned userspace_addr, which the kernel refuses whatever the flags.
    if (size != 0 && (offset & PAGE_MASK) != 0) {
      throw GmemException.einval("userspace_addr (gmem mapping + offset 0x" + Long.toHexString(offset) + ") not page aligned");
    }
    if ((flags & Memslot.GUEST_MEMFD) != 0 && ((offset & PAGE_MASK) != 0 || Long.compareUnsigned(offset + size, offset) < 0)) {
      throw GmemException.einval("guest_memfd offset 0x" + Long.toHexString(offset) + " unaligned or wraps");
    }
    if (Long.compareUnsigned(gpa + size, gpa) < 0) {
      throw GmemException.einval("GPA range wraps");
    }
    if (Long.compareUnsigned(size >>> Folio.PAGE_SHIFT, MAX_NR_PAGES) > 0) {
      throw GmemException.einval("memslot of " + (size >>> Folio.PAGE_SHIFT) + " pages exceeds KVM_MEM_MAX_NR_PAGES");
    }
    Memslot old = slots.get(slot);
    if (size == 0) {
      if (old == null) {
        throw GmemException.einval("deleting slot " + slot + " which does not exist");
      }
      return Change.DELETE;
    }
    if (old != null) {
      if (old.gpa() == gpa && old.size() == size && old.file() == file && old.offset() == offset && old.flags() != flags && ((old.flags() ^ flags) & ~featureFlags) == 0) {
        return Change.UPDATE;
      }
      throw GmemException.einval("guest_memfd memslot " + slot + " is immutable: delete it first");
    }
    for (Memslot m : slots.values()) {
      if ((m.slot() >>> 16) == as && overlaps(m.gpa(), m.size(), gpa, size)) {
        throw new GmemException(Errno.EEXIST, "GPA range overlaps slot " + m.slot());
      }
    }
    // Where the kernel would now create a plain userspace-memory slot; the GPA overlap (EEXIST)
    // came first there, so it does here.
    if ((flags & Memslot.GUEST_MEMFD) == 0) {
      throw GmemException.einval("gmem binds guest_memfd memslots only (KVM_MEM_GUEST_MEMFD missing)");
    }
    if (file == null || !file.isOpen()) {
      throw new GmemException(Errno.EBADF, "guest_memfd is not an open file");
    }
    if (!(file instanceof GuestMemFileImpl)) {
      throw GmemException.einval("not a guest_memfd of this runtime");
    }
    if (file.vm() != vm) {
      throw GmemException.einval("guest_memfd belongs to another VM");
    }
    if (offset < 0 || Long.compareUnsigned(offset + size, file.size()) > 0) {
      throw GmemException.einval("binding [0x" + Long.toHexString(offset) + ", +0x" + Long.toHexString(size) + ") beyond the file size 0x" + Long.toHexString(file.size()));
    }
    for (Memslot m : slots.values()) {
      if (m.file() == file && overlaps(m.offset(), m.size(), offset, size)) {
        throw GmemException.einval("file range already bound to slot " + m.slot());
      }
    }
    // kvm_arch_prepare_memory_region, after kvm_gmem_bind: the last GFN must be one the MMU maps.
    if (Long.compareUnsigned((gpa >>> Folio.PAGE_SHIFT) + (size >>> Folio.PAGE_SHIFT) - 1, maxGfn) > 0) {
      throw GmemException.einval("memslot [0x" + Long.toHexString(gpa) + ", +0x" + Long.toHexString(size) + ") ends beyond the largest GFN 0x" + Long.toHexString(maxGfn));
    }
    return Change.CREATE;
  }

  private static boolean overlaps(long a, long alen, long b, long blen) {
    return Long.compareUnsigned(a, b + blen) < 0 && Long.compareUnsigned(b, a + alen) < 0;
  }

  /**
   * Applies a validated change: a new slot with the window its {@code userspace_addr} points into,
   * an update of a slot's flags, which keeps its window ({@code window} and {@code kernelView} are
   * ignored), or a deletion, which hands back the deleted slot's window for the caller to close
   * once no access can be in flight through it.
   */
  public synchronized Binding apply(Change change, int slot, int flags, long gpa, long size, GuestMemFile file, long offset,
      GuestView.Window window, AutoCloseable kernelView) {
    Binding result;
    if (change == Change.DELETE) {
      slots.remove(slot);
      result = bindings.remove(slot);
    } else if (change == Change.UPDATE) {
      Binding old = bindings.get(slot); // flags only: the window and the kernel's view stay
      Memslot m = new Memslot(slot, flags, gpa, size, file, offset);
      slots.put(slot, m);
      result = Binding.of(m, old.window(), old.kernelView());
      bindings.put(slot, result);
    } else {
      Memslot m = new Memslot(slot, flags, gpa, size, file, offset);
      slots.put(slot, m);
      result = Binding.of(m, window, kernelView);
      bindings.put(slot, result);
    }
    Binding[] snap = slots.values().stream().filter(m -> (m.slot() >>> 16) == 0)
        .map(m -> bindings.get(m.slot())).toArray(Binding[]::new);
    Arrays.sort(snap, Comparator.comparingLong(Binding::gpa));
    byGpa = snap;
    generation++; // after the new snapshot: a reader that sees the new generation finds the new bindings
    onChange.run();
    return result;
  }

  /** The slot (address space 0) containing {@code gpa}, or null. Lock-free. */
  public Memslot lookup(long gpa) {
    Binding b = binding(gpa);
    return b == null ? null : b.slot();
  }

  /** The binding of the slot (address space 0) containing {@code gpa}, or null. Lock-free. */
  public Binding binding(long gpa) {
    Binding[] s = byGpa;
    int lo = 0;
    int hi = s.length - 1;
    while (lo <= hi) {
      int mid = (lo + hi) >>> 1;
      Binding m = s[mid];
      if (Long.compareUnsigned(gpa, m.gpa()) < 0) {
        hi = mid - 1;
      } else if (Long.compareUnsigned(gpa - m.gpa(), m.size()) >= 0) {
        lo = mid + 1;
      } else {
        return s[mid];
      }
    }
    return null;
  }

  public synchronized List<Memslot> all() {
    return new ArrayList<>(slots.values());
  }
}
