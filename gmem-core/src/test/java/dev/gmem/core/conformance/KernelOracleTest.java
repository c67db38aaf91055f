package dev.gmem.core.conformance;

import static dev.gmem.core.conformance.Errnos.outcome;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Shareability;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.file.GuestMemFileImpl;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The kernel is the oracle: for each call both can answer, gmem (on either backend) returns what a
 * raw guest_memfd on this machine's KVM returns, errno for errno. The raw side is {@link RawKernel}:
 * JNR straight to the kernel, no gmem code.
 */
class KernelOracleTest {
  static final long PAGE = 4096;
  static final long SIZE = 4 * PAGE;
  private int rawKvm = -1;
  private int rawVm = -1;

  @BeforeEach
  void openKvm() {
    Backends.assumeKernelGuestMemfd();
    rawKvm = RawKernel.openKvm();
    rawVm = RawKernel.createVm(rawKvm, 0);
  }

  @AfterEach
  void closeKvm() {
    if (rawKvm >= 0) {
      RawKernel.close(rawVm);
      RawKernel.close(rawKvm);
    }
  }

  /** One case of a matrix: the same kind of file on both sides. */
  interface FileCase {
    void run(String backend, long flags, int raw, GuestMemFile gmem);
  }

  /** Runs {@code body} for each backend and each creation-flag set, on a raw guest_memfd and a gmem file of {@link #SIZE}. */
  private void eachFileKind(FileCase body) {
    for (String backend : Backends.names().toList()) {
      try (GmemRuntime rt = Backends.open(backend)) {
        Vm vm = rt.createVm(VmType.DEFAULT);
        for (long flags : FLAGS) {
          int raw = RawKernel.createGuestMemfd(rawVm, SIZE, flags);
          try (GuestMemFile f = vm.createGuestMemFile(SIZE, flags)) {
            body.run(backend, flags, raw, f);
          } finally {
            RawKernel.close(raw);
          }
        }
      }
    }
  }

  private static final long[] FLAGS = {0, GmemFlags.MMAP, GmemFlags.INIT_SHARED, GmemFlags.MMAP | GmemFlags.INIT_SHARED};

  @Test
  void creationMatchesTheKernel() {
    long[] sizes = {0, 1, PAGE - 1, PAGE, PAGE + 1, 2 * PAGE, -PAGE, Long.MIN_VALUE, 1L << 40};
    for (String backend : Backends.names().toList()) {
      try (GmemRuntime rt = Backends.open(backend)) {
        Vm vm = rt.createVm(VmType.DEFAULT);
        for (int bit = 0; bit < 64; bit++) {
          for (long size : sizes) {
            long flags = bit == 63 ? 0 : 1L << bit;
            String kernel = RawKernel.outcome(() -> RawKernel.close(RawKernel.createGuestMemfd(rawVm, size, flags)));
            String gmem = outcome(() -> vm.createGuestMemFile(size, flags).close());
            assertEquals(kernel, gmem, backend + ": create(size " + size + ", flags 0x" + Long.toHexString(flags) + ")");
          }
        }
      }
    }
  }

  @Test
  void fallocateMatchesTheKernel() {
    int[] modes = {0, 1, 2, 3, 4, 5, 0x8, 0x9, 0x10, 0x11, 0x13, 0x20, 0x21, 0x40, 0x41, 0x80, 0x81, 0x100, 0x101};
    long[] offsets = {0, 1, PAGE - 1, PAGE, 3 * PAGE, SIZE, SIZE + PAGE, 100 * PAGE, -PAGE, Long.MAX_VALUE & ~(PAGE - 1)};
    long[] lengths = {0, 1, PAGE, 2 * PAGE, SIZE, 10 * PAGE, -PAGE, 0x7ffffffffffff000L, Long.MAX_VALUE};
    List<String> mismatches = new ArrayList<>();
    for (String backend : Backends.names().toList()) {
      try (GmemRuntime rt = Backends.open(backend)) {
        Vm vm = rt.createVm(VmType.DEFAULT);
        int raw = RawKernel.createGuestMemfd(rawVm, SIZE, 0);
        try (GuestMemFile f = vm.createGuestMemFile(SIZE, 0)) {
          for (int mode : modes) {
            for (long off : offsets) {
              for (long len : lengths) {
                String kernel = RawKernel.outcome(() -> RawKernel.fallocate(raw, mode, off, len));
                String gmem = outcome(() -> f.fallocate(mode, off, len));
                if (!kernel.equals(gmem)) {
                  mismatches.add(backend + ": fallocate(mode 0x" + Integer.toHexString(mode) + ", " + off + ", " + len + ") kernel " + kernel + " gmem " + gmem);
                }
              }
            }
          }
        } finally {
          RawKernel.close(raw);
        }
      }
    }
    assertEquals(List.of(), mismatches.subList(0, Math.min(8, mismatches.size())), mismatches.size() + " mismatches");
  }

  /**
   * mmap at an address gmem or the kernel chooses: prot × flags × offset × length on each kind of
   * file, the raw side a raw guest_memfd ({@link RawKernel}). Flags cover the sharing types (and
   * invalid ones), MAP_SHARED_VALIDATE with flags a guest_memfd does not know, MAP_POPULATE (with
   * MAP_NONBLOCK), MAP_LOCKED, MAP_HUGETLB and MAP_GROWSDOWN; offsets and lengths run into
   * EOVERFLOW and ENOMEM. A closed file answers as a closed fd: EBADF after the offset's check.
   */
  @Test
  void mmapMatchesTheKernel() {
    int[] prots = {0, 1, 2, 3, 4, 5, 7};
    int[] mapFlags = {0, 1, 2, 3, 5, 9, 0x41, 0x101, 0x4001, 0x8001, 0x18001, 0x2001, 0xa001, 0x40001, 0x80001, 0x80003, 0x2003};
    long[] offsets = {0, 1, PAGE, SIZE, 8 * SIZE, -PAGE, Long.MAX_VALUE & -PAGE};
    long[] lengths = {1, PAGE, SIZE, 4 * SIZE, -PAGE, 1L << 47};
    List<String> mismatches = new ArrayList<>();
    eachFileKind((backend, flags, raw, f) -> {
      for (int prot : prots) {
        for (int mf : mapFlags) {
          for (long off : offsets) {
            for (long len : lengths) {
              String kernel = RawKernel.outcome(() -> RawKernel.munmap(RawKernel.mmap(0, len, prot, mf, raw, off), len));
              String gmem = outcome(() -> f.map(off, len, prot, mf).close());
              if (!kernel.equals(gmem)) {
                mismatches.add(backend + ": flags " + flags + " mmap(prot " + prot + ", flags 0x" + Integer.toHexString(mf) + ", off " + off + ", len " + len + ") kernel " + kernel + " gmem " + gmem);
              }
            }
          }
        }
      }
    });
    for (String backend : Backends.names().toList()) {
      try (GmemRuntime rt = Backends.open(backend)) {
        Vm vm = rt.createVm(VmType.DEFAULT);
        GuestMemFile closed = vm.createGuestMemFile(SIZE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
        closed.close();
        for (long off : new long[] {0, 1}) {
          for (int mf : new int[] {1, 0x40001, 2}) {
            for (long len : new long[] {0, PAGE}) {
              String kernel = RawKernel.outcome(() -> RawKernel.mmap(0, len, 3, mf, -1, off));
              String gmem = outcome(() -> closed.map(off, len, 3, mf).close());
              if (!kernel.equals(gmem)) {
                mismatches.add(backend + ": closed file mmap(flags 0x" + Integer.toHexString(mf) + ", off " + off + ", len " + len + ") kernel " + kernel + " gmem " + gmem);
              }
            }
          }
        }
      }
    }
    assertEquals(List.of(), mismatches.subList(0, Math.min(8, mismatches.size())), mismatches.size() + " mismatches");
  }

  /** Where the fixed-address cases map: far below where the kernel places mappings top-down. */
  static final long ARENA_HINT = 0x2000_0000_0000L;
  static final long ARENA = 64 * PAGE;
  /** [arena, arena+32 pages) and [+48, +64 pages) are reserved (PROT_NONE); [+32, +48 pages) is a hole. */
  static final long HOLE = 32 * PAGE;
  static final long HOLE_SIZE = 16 * PAGE;

  /** The address each target names, from the arena's start. */
  enum Target {
    RESERVED(8 * PAGE),
    HOLE(32 * PAGE),
    ACROSS(30 * PAGE),
    UNALIGNED(8 * PAGE + 1),
    BEYOND_ADDRESS_SPACE(-1),
    TOP(-2);

    final long at;

    Target(long at) {
      this.at = at;
    }

    long address(long arena) {
      return at == -1 ? 1L << 57 : at == -2 ? -PAGE : arena + at;
    }
  }

  /** Puts the arena back: reserved where it was, the hole unmapped, whatever a case mapped gone. */
  private static void resetArena(long arena) {
    RawKernel.mmap(arena, HOLE, 0, RawKernel.MAP_PRIVATE | RawKernel.MAP_ANONYMOUS | RawKernel.MAP_NORESERVE | RawKernel.MAP_FIXED, -1, 0);
    RawKernel.munmap(arena + HOLE, HOLE_SIZE);
    RawKernel.mmap(arena + HOLE + HOLE_SIZE, ARENA - HOLE - HOLE_SIZE, 0,
        RawKernel.MAP_PRIVATE | RawKernel.MAP_ANONYMOUS | RawKernel.MAP_NORESERVE | RawKernel.MAP_FIXED, -1, 0);
  }

  /** Whether every page of the range is mapped (mincore fails with ENOMEM on a hole). */
  private static String layout(long arena) {
    return RawKernel.outcome(() -> RawKernel.resident(arena, HOLE)) + "/" + RawKernel.outcome(() -> RawKernel.resident(arena + HOLE, PAGE))
        + "/" + RawKernel.outcome(() -> RawKernel.resident(arena + HOLE + HOLE_SIZE, ARENA - HOLE - HOLE_SIZE));
  }

  /**
   * mmap at an address — MAP_FIXED, MAP_FIXED_NOREPLACE, with MAP_SHARED(_VALIDATE), MAP_PRIVATE,
   * MAP_LOCKED, MAP_POPULATE — over reserved memory, a hole, a range across both, an unaligned
   * address and ranges beyond the address space: gmem answers as the kernel, maps exactly there,
   * and the mapping's first page reads as the kernel's does; a failed call leaves the range as it
   * was (the kernel may leave a MAP_FIXED range unmapped, so only gmem is held to that).
   */
  @Test
  void mmapAtAnAddressMatchesTheKernel() {
    int fixed = RawKernel.MAP_FIXED;
    int noReplace = RawKernel.MAP_FIXED_NOREPLACE;
    int[] mapFlags = {1 | fixed, 1 | noReplace, 3 | fixed, 3 | noReplace, 2 | fixed, fixed, 1 | fixed | 0x2000, 1 | noReplace | 0x8000};
    int[] prots = {0, 1, 3, 7};
    long[] offsets = {0, PAGE, 1, -PAGE};
    long[] lengths = {PAGE, SIZE, 4 * SIZE};
    long arena = RawKernel.mmap(ARENA_HINT, ARENA, 0, RawKernel.MAP_PRIVATE | RawKernel.MAP_ANONYMOUS | RawKernel.MAP_NORESERVE, -1, 0);
    List<String> mismatches = new ArrayList<>();
    int[] mapped = {0};
    try {
      resetArena(arena);
      String before = layout(arena);
      eachFileKind((backend, flags, raw, f) -> {
        for (Target target : Target.values()) {
          long address = target.address(arena);
          for (int mf : mapFlags) {
            for (int prot : prots) {
              for (long off : offsets) {
                for (long len : lengths) {
                  String what = backend + ": flags " + flags + " mmap(" + target + ", prot " + prot + ", flags 0x" + Integer.toHexString(mf) + ", off " + off + ", len " + len + ")";
                  String kernel;
                  String kernelRead = "";
                  try {
                    long at = RawKernel.mmap(address, len, prot, mf, raw, off);
                    kernel = at == address ? "ok" : "ok elsewhere";
                    kernelRead = RawKernel.outcome(() -> RawKernel.kernelRead(at));
                  } catch (RawKernel.Failure e) {
                    kernel = e.errno;
                  }
                  resetArena(arena);
                  String gmem;
                  String gmemRead = "";
                  try (HostMapping m = f.map(address, off, len, prot, mf)) {
                    gmem = m.address() == address ? "ok" : "ok elsewhere";
                    gmemRead = RawKernel.outcome(() -> RawKernel.kernelRead(m.address()));
                    mapped[0]++;
                  } catch (GmemException e) {
                    gmem = e.errno().name();
                    if (!before.equals(layout(arena))) {
                      mismatches.add(what + " failed with " + gmem + " but changed the arena: " + layout(arena));
                    }
                  }
                  resetArena(arena);
                  if (!kernel.equals(gmem) || !kernelRead.equals(gmemRead)) {
                    mismatches.add(what + " kernel " + kernel + " " + kernelRead + ", gmem " + gmem + " " + gmemRead);
                  }
                }
              }
            }
          }
        }
      });
    } finally {
      RawKernel.munmap(arena, ARENA);
    }
    assertEquals(List.of(), mismatches.subList(0, Math.min(8, mismatches.size())), mismatches.size() + " mismatches");
    assertTrue(mapped[0] > 100, "the matrix must map at fixed addresses too, mapped " + mapped[0]);
  }

  /**
   * gmem refuses a fixed address below vm.mmap_min_addr with EPERM even where the kernel would
   * let a privileged process map page 0 (the JVM's null checks rely on it faulting), and maps
   * nothing there.
   */
  @Test
  void aFixedAddressBelowMmapMinAddrIsRefused() throws IOException {
    long min = Long.parseLong(Files.readString(Path.of("/proc/sys/vm/mmap_min_addr")).trim());
    assumeTrue(min > 0, "vm.mmap_min_addr is 0: every address is allowed");
    for (String backend : Backends.names().toList()) {
      try (GmemRuntime rt = Backends.open(backend); GuestMemFile f = rt.createVm(VmType.DEFAULT).createGuestMemFile(SIZE, GmemFlags.MMAP | GmemFlags.INIT_SHARED)) {
        for (int mf : new int[] {1 | RawKernel.MAP_FIXED, 1 | RawKernel.MAP_FIXED_NOREPLACE}) {
          for (long address : new long[] {0, (min - 1) & -PAGE}) {
            Errnos.expect(Errno.EPERM, () -> f.map(address, 0, PAGE, 3, mf).close());
            assertEquals("ENOMEM", RawKernel.outcome(() -> RawKernel.resident(address, PAGE)), "nothing mapped at 0x" + Long.toHexString(address));
          }
        }
        Errnos.expect(Errno.EPERM, () -> f.map(0, PAGE, 3, 1 | RawKernel.MAP_FIXED).close());
      }
    }
  }

  @Test
  void hostAccessMatchesTheKernelSigbusRule() {
    // Kernel: MMAP-only pages SIGBUS (a syscall copy sees EFAULT); gmem: EACCES from the accessor,
    // EFAULT from the same syscall probe on its mapping.
    for (String backend : Backends.names().toList()) {
      try (GmemRuntime rt = Backends.open(backend)) {
        Vm vm = rt.createVm(VmType.DEFAULT);
        int raw = RawKernel.createGuestMemfd(rawVm, SIZE, GmemFlags.MMAP);
        try (GuestMemFile f = vm.createGuestMemFile(SIZE, GmemFlags.MMAP); HostMapping m = f.map()) {
          long rawMap = RawKernel.mmap(0, SIZE, 3, 1, raw, 0);
          try {
            assertEquals("EFAULT", RawKernel.outcome(() -> RawKernel.kernelRead(rawMap)));
            assertEquals("EFAULT", RawKernel.outcome(() -> RawKernel.kernelRead(m.address())), backend);
            Errnos.expect(Errno.EACCES, () -> m.getLong(0));
          } finally {
            RawKernel.munmap(rawMap, SIZE);
          }
        } finally {
          RawKernel.close(raw);
        }
      }
    }
  }

  /** Pages of a file resident in its page cache: mincore over a fresh mapping that faults nothing in. */
  private static boolean[] resident(int fd, long size) {
    long a = RawKernel.mmap(0, size, 0, RawKernel.MAP_SHARED, fd, 0);
    try {
      return RawKernel.resident(a, size);
    } finally {
      RawKernel.munmap(a, size);
    }
  }

  /** The VmFlags of every VMA of this process that overlaps {@code [address, address+length)}. */
  private static List<String> vmFlags(long address, long length) {
    List<String> flags = new ArrayList<>();
    boolean overlaps = false;
    try {
      for (String line : Files.readAllLines(Path.of("/proc/self/smaps"))) {
        int dash = line.indexOf('-');
        int space = line.indexOf(' ');
        if (dash > 0 && space > dash && line.substring(0, dash).matches("[0-9a-f]+")) {
          long start = Long.parseUnsignedLong(line.substring(0, dash), 16);
          long end = Long.parseUnsignedLong(line.substring(dash + 1, space), 16);
          overlaps = start < address + length && address < end;
        } else if (overlaps && line.startsWith("VmFlags:")) {
          flags.add(line.substring(8).trim());
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return flags;
  }

  private static boolean allLocked(List<String> vmFlags) {
    return !vmFlags.isEmpty() && vmFlags.stream().allMatch(f -> Arrays.asList(f.split(" ")).contains("lo"));
  }

  /**
   * MAP_LOCKED (and MAP_POPULATE) fault in exactly the pages the host may fault, and the mapping
   * succeeds whatever is private. The kernel answers per page kind: a raw MMAP|INIT_SHARED
   * guest_memfd for shared pages, a raw MMAP-only one for private pages, mapped alike; the gmem
   * file holds both kinds (pages 1 and 3 private). Compared: the outcome, and which pages the
   * mapping brought into the file's page cache (for gmem: its backing memory, and
   * {@code allocatedPages}).
   */
  @Test
  void mapLockedAndPopulateFaultInOnlyWhatTheHostMayFault() {
    int[] prots = {0, 1, 2, 3};
    int[] mapFlags = {0x2001, 0xa001, 0x2003, 0x8001, 0x18001, 0x1};
    long[] offsets = {0, PAGE};
    long[] lengths = {PAGE, SIZE - 8, 2 * SIZE};
    List<String> mismatches = new ArrayList<>();
    int lockedAndFaultedIn = 0;
    for (String backend : Backends.names().toList()) {
      try (GmemRuntime rt = Backends.open(backend)) {
        Vm vm = rt.createVm(VmType.SW_PROTECTED);
        for (int prot : prots) {
          for (int mf : mapFlags) {
            for (long off : offsets) {
              for (long len : lengths) {
                String what = backend + ": mmap(prot " + prot + ", flags 0x" + Integer.toHexString(mf) + ", off " + off + ", len " + len + ")";
                int shared = RawKernel.createGuestMemfd(rawVm, SIZE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
                int priv = RawKernel.createGuestMemfd(rawVm, SIZE, GmemFlags.MMAP);
                boolean[] expected = new boolean[(int) (SIZE / PAGE)];
                String kernel;
                try {
                  long a = RawKernel.mmap(0, len, prot, mf, shared, off);
                  long b = RawKernel.mmap(0, len, prot, mf, priv, off);
                  RawKernel.munmap(a, len);
                  RawKernel.munmap(b, len);
                  boolean[] s = resident(shared, SIZE);
                  boolean[] p = resident(priv, SIZE);
                  for (int i = 0; i < expected.length; i++) {
                    expected[i] = i % 2 == 0 ? s[i] : p[i];
                  }
                  kernel = "ok";
                } catch (RawKernel.Failure e) {
                  kernel = e.errno;
                } finally {
                  RawKernel.close(shared);
                  RawKernel.close(priv);
                }
                try (GuestMemFile f = vm.createGuestMemFile(SIZE, GmemFlags.MMAP | GmemFlags.INIT_SHARED)) {
                  f.setShareability(PAGE, PAGE, Shareability.PRIVATE);
                  f.setShareability(3 * PAGE, PAGE, Shareability.PRIVATE);
                  String gmem;
                  try (HostMapping m = f.map(off, len, prot, mf)) {
                    gmem = "ok";
                  } catch (GmemException e) {
                    gmem = e.errno().name();
                  }
                  boolean[] actual = resident(((GuestMemFileImpl) f).inodeImpl().memory().get(), SIZE);
                  long count = 0;
                  for (boolean r : expected) {
                    count += r ? 1 : 0;
                  }
                  if (!kernel.equals(gmem) || !Arrays.equals(expected, actual) || count != f.inode().allocatedPages()) {
                    mismatches.add(what + ": kernel " + kernel + " resident " + Arrays.toString(expected)
                        + ", gmem " + gmem + " resident " + Arrays.toString(actual) + " allocated " + f.inode().allocatedPages());
                  }
                  if ((mf & 0x2000) != 0 && count > 0) {
                    lockedAndFaultedIn++;
                  }
                }
              }
            }
          }
        }
      }
    }
    assertEquals(List.of(), mismatches.subList(0, Math.min(8, mismatches.size())), mismatches.size() + " mismatches");
    assertTrue(lockedAndFaultedIn > 10, "the matrix must lock and fault in pages, did " + lockedAndFaultedIn);
  }

  /** A MAP_LOCKED mapping is VM_LOCKED throughout, over shared and private pages and beyond EOF, as the kernel's. */
  @Test
  void mapLockedLocksTheWholeMapping() {
    for (String backend : Backends.names().toList()) {
      try (GmemRuntime rt = Backends.open(backend)) {
        Vm vm = rt.createVm(VmType.SW_PROTECTED);
        for (long flags : new long[] {GmemFlags.MMAP, GmemFlags.MMAP | GmemFlags.INIT_SHARED}) {
          int raw = RawKernel.createGuestMemfd(rawVm, SIZE, flags);
          try (GuestMemFile f = vm.createGuestMemFile(SIZE, GmemFlags.MMAP | GmemFlags.INIT_SHARED)) {
            f.setShareability(PAGE, PAGE, Shareability.PRIVATE);
            long a = RawKernel.mmap(0, 2 * SIZE, 3, 0x2001, raw, 0);
            try (HostMapping m = f.map(0, 2 * SIZE, 3, 0x2001)) {
              List<String> kernel = vmFlags(a, 2 * SIZE);
              List<String> gmem = vmFlags(m.address(), 2 * SIZE);
              assertTrue(allLocked(kernel), "the kernel's mapping is VM_LOCKED: " + kernel);
              assertTrue(allLocked(gmem), backend + ": every VMA of gmem's mapping is VM_LOCKED: " + gmem);
            } finally {
              RawKernel.munmap(a, 2 * SIZE);
            }
          } finally {
            RawKernel.close(raw);
          }
        }
      }
    }
  }
}
