package dev.gmem.core.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.file.GuestMemFileImpl;
import dev.gmem.core.sys.Sys;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * What a private page's bytes can be reached through, from inside the VMM process, at the OS level
 * (not through gmem's API): every mapping of the inode's memory in {@code /proc/self/maps}, read
 * through {@code /proc/self/mem} (which reads PROT_NONE too), and a reopen of the memory's fd
 * through {@code /proc/self/fd}. While a memslot binds the page the guest's window must map it
 * (this kernel has no in-place conversion), and so does a host mapping of its range (for the
 * accessors); a page no slot binds and no host mapping covers is mapped nowhere — gmem maps no
 * whole file. The guest's window is left out of core dumps.
 */
class GuestViewPrivacyTest {
  static final long PAGE = 4096;
  static final long GPA = 0x100000;
  static final long SECRET = 0x5ec7e7_5ec7e7L;
  private static final Sys SYS = Sys.load();

  static Stream<String> backends() {
    return Backends.names();
  }

  /** One line of /proc/self/maps. */
  record Vma(long start, long end, long pgoff, String flags, String path) {}

  /** The mappings of the file with this device and inode. */
  static List<Vma> mappingsOf(Sys.Stat st) throws IOException {
    long major = ((st.dev() >>> 8) & 0xfff) | ((st.dev() >>> 32) & ~0xfffL);
    long minor = (st.dev() & 0xff) | ((st.dev() >>> 12) & ~0xffL);
    String dev = String.format("%02x:%02x", major, minor);
    List<Vma> out = new ArrayList<>();
    for (String line : Files.readAllLines(Path.of("/proc/self/maps"))) {
      String[] f = line.trim().split("\\s+", 6);
      if (f.length >= 5 && f[3].equals(dev) && Long.parseLong(f[4]) == st.ino()) {
        String[] range = f[0].split("-");
        out.add(new Vma(Long.parseUnsignedLong(range[0], 16), Long.parseUnsignedLong(range[1], 16), Long.parseLong(f[2], 16), f[1],
            f.length > 5 ? f[5] : ""));
      }
    }
    return out;
  }

  /** The 8 bytes at {@code address} as /proc/self/mem reads them; null where the kernel cannot (EIO). */
  static Long procMem(long address) {
    try (RandomAccessFile mem = new RandomAccessFile("/proc/self/mem", "r")) {
      byte[] b = new byte[8];
      mem.seek(address);
      mem.readFully(b);
      return ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getLong();
    } catch (IOException e) {
      return null;
    }
  }

  /** Every readable copy of file page {@code page} in this process's mappings of the file. */
  static List<String> copiesOf(Sys.Stat st, long page, long value) throws IOException {
    List<String> found = new ArrayList<>();
    for (Vma v : mappingsOf(st)) {
      long off = page * PAGE - v.pgoff();
      if (off >= 0 && off < v.end() - v.start()) {
        Long seen = procMem(v.start() + off);
        if (seen != null && seen == value) {
          found.add(Long.toHexString(v.start()) + " " + v.flags() + " " + v.path());
        }
      }
    }
    return found;
  }

  /** Whether the VMA holding {@code address} is excluded from core dumps ({@code dd} in smaps' VmFlags). */
  static boolean excludedFromDumps(long address) throws IOException {
    boolean inside = false;
    for (String line : Files.readAllLines(Path.of("/proc/self/smaps"))) {
      if (line.matches("^[0-9a-f]+-[0-9a-f]+ .*")) {
        String[] range = line.split("\\s")[0].split("-");
        inside = Long.parseUnsignedLong(range[0], 16) <= address && address < Long.parseUnsignedLong(range[1], 16);
      } else if (inside && line.startsWith("VmFlags:")) {
        return List.of(line.substring(8).trim().split("\\s+")).contains("dd");
      }
    }
    throw new AssertionError("no VMA at 0x" + Long.toHexString(address));
  }

  @ParameterizedTest
  @MethodSource("backends")
  void privatePageIsMappedOnlyWhereTheGuestNeedsIt(String backend) throws IOException {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      // The host maps only the page it uses; a host mapping's range is mapped for its accessors.
      try (GuestMemFile f = vm.createGuestMemFile(4 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
          HostMapping m = f.map(0, PAGE, dev.gmem.api.Prot.READ_WRITE, dev.gmem.api.MapFlags.SHARED)) {
        Sys.Stat st = SYS.fstat(((GuestMemFileImpl) f).inodeImpl().memory().get());
        m.putLong(0, 1); // the host touches a shared page through its accessors
        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 4 * PAGE, f, 0);
        f.setShareability(PAGE, PAGE, Shareability.PRIVATE);
        vm.softwareVcpu().writeLong(GPA + PAGE, SECRET, true);

        List<String> bound = copiesOf(st, 1, SECRET);
        assertEquals(1, bound.size(), "while bound, exactly the guest's window maps the private page: " + bound);
        for (Vma v : mappingsOf(st)) {
          long off = PAGE - v.pgoff();
          Long seen = off >= 0 && off < v.end() - v.start() ? procMem(v.start() + off) : null;
          if (seen != null && seen == SECRET) {
            assertTrue(excludedFromDumps(v.start()), "the guest's window is MADV_DONTDUMP");
          }
        }

        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 0, null, 0);
        assertEquals(List.of(), copiesOf(st, 1, SECRET), "unbound, no mapping of the process holds the private bytes");
        assertEquals(1, m.getLong(0), "the host mapping still works");
        try (HostMapping all = f.map()) {
          assertThrows(dev.gmem.api.GmemException.class, () -> all.getLong(PAGE), "and a mapping of the private page refuses it");
        }
      }
    }
  }

  /**
   * A host mapping used through its accessors alone maps the file once — gmem's window — and its
   * raw view, reserved as SIGBUS memory, maps the file only from its hand-out on: every mapping of
   * the file costs the kernel an unmap walk on each punch, and a raw view nobody asked for holds no
   * bytes anyone could read through /proc/self/mem.
   */
  @ParameterizedTest
  @MethodSource("backends")
  void aHostMappingMapsTheFileOnceUntilItsRawViewIsHandedOut(String backend) throws IOException {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      try (GuestMemFile f = vm.createGuestMemFile(4 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
          HostMapping m = f.map()) {
        Sys.Stat st = SYS.fstat(((GuestMemFileImpl) f).inodeImpl().memory().get());
        m.putLong(PAGE, SECRET);
        assertEquals(1, mappingsOf(st).size(), "accessors only: gmem's window alone maps the file: " + mappingsOf(st));
        long raw = m.address();
        assertEquals(2, mappingsOf(st).size(), "handed out: the raw view maps it too");
        assertEquals(SECRET, procMem(raw + PAGE), "and the raw view reads the file");
        assertEquals(SECRET, m.buffer(PAGE, 8).order(ByteOrder.LITTLE_ENDIAN).getLong(0));
      }
    }
  }

  /**
   * {@code /proc/self/fd/N} of the memory: a guest_memfd cannot be reopened at all (ENXIO); gmem
   * makes its memfd mode 000, which stops a reopen by any process without CAP_DAC_OVERRIDE — the
   * test drops it for its own thread, as a non-root VMM runs. Root keeps it: see the threat model.
   */
  @ParameterizedTest
  @MethodSource("backends")
  void memoryFdIsNotReopenableWithoutDacOverride(String backend) throws IOException {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      try (GuestMemFile f = vm.createGuestMemFile(2 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED)) {
        vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 2 * PAGE, f, 0);
        f.setShareability(PAGE, PAGE, Shareability.PRIVATE);
        vm.softwareVcpu().writeLong(GPA + PAGE, SECRET, true);
        int fd = ((GuestMemFileImpl) f).inodeImpl().memory().get();
        assertNotEquals(0, Capabilities.fdFlags(fd) & 1, "FD_CLOEXEC: no child inherits the memory");
        Path link = Path.of("/proc/self/fd/" + fd);
        Long read = Capabilities.withoutDacOverride(() -> {
          try (FileChannel c = FileChannel.open(link, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            c.read(b, PAGE);
            return b.getLong(0);
          } catch (IOException e) {
            return null;
          }
        });
        assertNull(read, "a reopen of the memory fd must fail");
      }
    }
  }
}
