package dev.gmem.core.conformance;

import static dev.gmem.core.conformance.Errnos.outcome;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.MapFlags;
import dev.gmem.api.Memslot;
import dev.gmem.api.Prot;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Kvm;
import dev.gmem.core.sys.Mapping;
import dev.gmem.core.sys.Sys;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The kernel is the oracle for memslot binding: every {@code (slot, flags, gpa, size, file, offset)}
 * of a matrix goes to gmem (on each backend) and, as a raw {@code KVM_SET_USER_MEMORY_REGION2}, to a
 * raw VM of this machine's KVM, both holding the same baseline slot; the outcomes must be equal,
 * errno for errno.
 *
 * <p>The raw call passes what gmem's kvm backend passes: {@code userspace_addr} = the guest_memfd's
 * own shared mapping + offset for a bind, 0 for a delete. gmem chooses that address itself, so the
 * matrix keeps offsets small: with an offset of terabytes {@code mapping + offset} stops being a
 * user address, and the kernel's {@code access_ok} would answer before checks gmem's caller can
 * influence. Slot sizes stay small too (a huge slot takes seconds on this host, kernel-uapi §4.9).
 */
class MemslotOracleTest {
  static final long PAGE = 4096;
  static final long FILE_SIZE = 8 * PAGE;
  /** Bound in both before every case: slot 0, GPA [0, 2 pages) → file [0, 2 pages). */
  static final long BASE_SIZE = 2 * PAGE;

  private static final Sys SYS = Sys.load();
  private final Kvm kvm = new Kvm(SYS);
  private Fd device;
  private Fd vmFd;
  private Fd otherVmFd;
  private final List<AutoCloseable> owned = new ArrayList<>();

  /** Which file a case binds. */
  enum FileKind {
    OWN,
    OTHER_VM,
    CLOSED,
    NONE
  }

  record Case(int slot, int flags, long gpa, long size, FileKind file, long offset) {
    @Override
    public String toString() {
      return String.format("(slot 0x%x, flags 0x%x, gpa 0x%x, size 0x%x, %s, offset 0x%x)", slot, flags, gpa, size, file, offset);
    }
  }

  /** The raw side: one VM, its guest_memfd, another VM's guest_memfd and a closed one, each with its mapping. */
  private long ownMap;
  private long otherMap;
  private long closedMap;
  private int ownFd;
  private int otherFd;
  private int closedFd;

  @BeforeEach
  void openKvm() {
    Backends.assumeKernelGuestMemfd();
    device = kvm.openDevice();
    vmFd = kvm.createVm(device, 0);
    otherVmFd = kvm.createVm(device, 0);
    long flags = GmemFlags.MMAP | GmemFlags.INIT_SHARED;
    Fd own = own(kvm.createGuestMemfd(vmFd, FILE_SIZE, flags));
    Fd other = own(kvm.createGuestMemfd(otherVmFd, FILE_SIZE, flags));
    Fd closed = kvm.createGuestMemfd(vmFd, FILE_SIZE, flags);
    ownFd = own.get();
    otherFd = other.get();
    ownMap = map(own);
    otherMap = map(other);
    closedMap = map(closed); // the mapping keeps the file alive; the fd number is what goes away
    closedFd = closed.get();
    closed.close();
    rawSet(0, Memslot.GUEST_MEMFD, 0, BASE_SIZE, ownFd, ownMap, 0);
  }

  private Fd own(Fd fd) {
    owned.add(fd);
    return fd;
  }

  private long map(Fd fd) {
    Mapping m = new Mapping(SYS, SYS.mmap(0, FILE_SIZE, Prot.READ_WRITE, MapFlags.SHARED, fd.get(), 0), FILE_SIZE);
    owned.add(m);
    return m.address();
  }

  @AfterEach
  void closeKvm() throws Exception {
    for (AutoCloseable c : owned) {
      c.close();
    }
    if (vmFd != null) {
      otherVmFd.close();
      vmFd.close();
      device.close();
    }
  }

  private void rawSet(int slot, int flags, long gpa, long size, int fd, long map, long offset) {
    long uaddr = size == 0 ? 0 : map + offset;
    kvm.setUserMemoryRegion2(vmFd, slot, flags, gpa, size, uaddr, fd, offset);
  }

  private String kernel(Case c) {
    switch (c.file) {
      case OWN:
        return outcome(() -> rawSet(c.slot, c.flags, c.gpa, c.size, ownFd, ownMap, c.offset));
      case OTHER_VM:
        return outcome(() -> rawSet(c.slot, c.flags, c.gpa, c.size, otherFd, otherMap, c.offset));
      case CLOSED:
        return outcome(() -> rawSet(c.slot, c.flags, c.gpa, c.size, closedFd, closedMap, c.offset));
      default:
        return outcome(() -> rawSet(c.slot, c.flags, c.gpa, c.size, -1, 0, c.offset));
    }
  }

  /** Puts the raw VM back to the baseline after a case the kernel accepted. */
  private void rawUndo(Case c) {
    if (c.size == 0) {
      rawSet(0, Memslot.GUEST_MEMFD, 0, BASE_SIZE, ownFd, ownMap, 0);
    } else {
      rawSet(c.slot, 0, 0, 0, 0, 0, 0);
    }
  }

  private static void gmemUndo(Vm vm, Case c, GuestMemFile own) {
    if (c.size == 0) {
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, BASE_SIZE, own, 0);
    } else {
      vm.setMemoryRegion(c.slot, 0, 0, 0, null, 0);
    }
  }

  private static List<Case> cases() {
    List<Case> cases = new ArrayList<>();
    int gm = Memslot.GUEST_MEMFD;
    // Geometry: every slot id/address space against every GPA, size and offset, with a good file.
    int[] slots = {0, 1, 32763, 32764, 0xffff, 1 << 16 | 1, 2 << 16 | 1};
    long[] gpas = {0, PAGE, 2 * PAGE, 1, 1L << 32, (1L << 52) - PAGE, 1L << 52, 1L << 63, -PAGE, -2 * PAGE};
    long[] sizes = {0, PAGE, 2 * PAGE, 1, PAGE + 1, 6 * PAGE, FILE_SIZE, FILE_SIZE + PAGE};
    long[] offsets = {0, PAGE, 2 * PAGE, 6 * PAGE, FILE_SIZE, 1, PAGE - 1, -PAGE};
    for (int slot : slots) {
      for (long gpa : gpas) {
        for (long size : sizes) {
          for (long offset : offsets) {
            cases.add(new Case(slot, gm, gpa, size, FileKind.OWN, offset));
          }
        }
      }
    }
    // Flags and files: every flag combination and file kind against a few geometries, good and bad.
    int[] flagSet = {0, gm, gm | Memslot.LOG_DIRTY_PAGES, gm | Memslot.READONLY, gm | 8, 8, Memslot.READONLY, Memslot.LOG_DIRTY_PAGES, gm | 1 << 31};
    for (int flags : flagSet) {
      for (FileKind file : FileKind.values()) {
        for (int slot : new int[] {0, 1, 32764, 1 << 16 | 1}) {
          for (long gpa : new long[] {PAGE, 1L << 32, 1L << 52}) {
            for (long size : new long[] {0, PAGE, 2 * PAGE}) {
              for (long offset : new long[] {0, 2 * PAGE, 1}) {
                cases.add(new Case(slot, flags, gpa, size, file, offset));
              }
            }
          }
        }
      }
    }
    return cases;
  }

  /**
   * gmem binds guest_memfd memslots only: where the kernel creates a plain userspace-memory slot
   * (no {@code KVM_MEM_GUEST_MEMFD}), gmem answers EINVAL. Every other outcome is the kernel's.
   */
  private static String expectedFromGmem(Case c, String kernel) {
    boolean plainCreate = (c.flags & Memslot.GUEST_MEMFD) == 0 && c.size != 0;
    return plainCreate && kernel.equals("ok") ? "EINVAL" : kernel;
  }

  @Test
  void everyBindingOutcomeMatchesTheKernel() {
    List<Case> cases = cases();
    List<String> kernelOutcomes = new ArrayList<>();
    int accepted = 0;
    for (Case c : cases) {
      String k = kernel(c);
      kernelOutcomes.add(k);
      if (k.equals("ok")) {
        accepted++;
        rawUndo(c);
      }
    }
    assertTrue(accepted > 100, "the matrix must exercise successful binds too, got " + accepted);

    List<String> mismatches = new ArrayList<>();
    for (String backend : Backends.names().toList()) {
      try (GmemRuntime rt = Backends.open(backend)) {
        Vm vm = rt.createVm(VmType.DEFAULT);
        Vm other = rt.createVm(VmType.DEFAULT);
        GuestMemFile own = vm.createGuestMemFile(FILE_SIZE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
        GuestMemFile foreign = other.createGuestMemFile(FILE_SIZE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
        GuestMemFile closed = vm.createGuestMemFile(FILE_SIZE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
        closed.close();
        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, BASE_SIZE, own, 0);
        List<Memslot> baseline = vm.memslots();
        for (int i = 0; i < cases.size(); i++) {
          Case c = cases.get(i);
          GuestMemFile f = c.file == FileKind.OWN ? own : c.file == FileKind.OTHER_VM ? foreign : c.file == FileKind.CLOSED ? closed : null;
          String g = outcome(() -> vm.setMemoryRegion(c.slot, c.flags, c.gpa, c.size, f, c.offset));
          String expected = expectedFromGmem(c, kernelOutcomes.get(i));
          if (!expected.equals(g)) {
            mismatches.add(backend + ": " + c + " kernel " + kernelOutcomes.get(i) + " gmem " + g);
          }
          if (g.equals("ok")) {
            gmemUndo(vm, c, own);
          } else if (!baseline.equals(vm.memslots())) {
            fail(backend + ": " + c + " failed with " + g + " but changed the memslots to " + vm.memslots());
          }
        }
        assertEquals(baseline, vm.memslots(), backend + ": back at the baseline");
      }
    }
    assertEquals(List.of(), mismatches.subList(0, Math.min(400, mismatches.size())), mismatches.size() + " mismatches of " + cases.size() + " cases");
  }
}
