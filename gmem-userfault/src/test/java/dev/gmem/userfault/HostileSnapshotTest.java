package dev.gmem.userfault;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vcpu;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import dev.gmem.userfault.snapshot.LazyRestore;
import dev.gmem.userfault.snapshot.Snapshot;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A snapshot damaged on disk — a flipped byte in memory.img, a flipped bit in zero.bits, a
 * truncated image, a corrupt vm.meta, flags this runtime lacks — is refused clearly: the restore
 * never serves the garbage or a zero page in place of content, and a refused restore leaves no VM
 * and no page-source thread behind.
 */
class HostileSnapshotTest {
  static final long PAGE = 4096;
  static final int PAGES = 16;
  /** vm.meta offsets for a DEFAULT VM with one SHARED file and one memslot (layout in Snapshot.write). */
  static final int FILE_FLAGS_AT = 21;
  static final int SLOT_FILE_AT = 93;

  @TempDir
  Path dir;

  static byte[] content(long gfn) {
    ByteBuffer b = ByteBuffer.allocate((int) PAGE);
    if (gfn != 5) { // page 5 is a known-zero page
      for (int i = 0; i < PAGE; i += 8) {
        b.putLong(i, gfn * 0x9E3779B97F4A7C15L + i + 1);
      }
    }
    return b.array();
  }

  @BeforeEach
  void snapshot() throws Exception {
    try (GmemRuntime rt = Backends.open("kvm")) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, PAGES * PAGE, f, 0);
      for (long g = 0; g < PAGES; g++) {
        vm.guestMemory().write(g * PAGE, content(g), 0, (int) PAGE);
      }
      try (Vcpu cpu = vm.createVcpu(0)) {
        Snapshot.write(vm, cpu, dir);
      }
    }
  }

  static byte[] read(LazyRestore r, long gfn) {
    byte[] b = new byte[(int) PAGE];
    r.vm().guestMemory().read(gfn * PAGE, b, 0, b.length);
    return b;
  }

  static long threads(String name) {
    return Thread.getAllStackTraces().keySet().stream().filter(t -> t.isAlive() && t.getName().startsWith(name)).count();
  }

  void poke(String file, long at, byte value) throws Exception {
    try (RandomAccessFile f = new RandomAccessFile(dir.resolve(file).toFile(), "rw")) {
      f.seek(at);
      f.write(value);
    }
  }

  @Test
  void anIntactSnapshotRestoresEveryPage() throws Exception {
    try (GmemRuntime rt = Backends.open("kvm"); LazyRestore r = LazyRestore.start(rt, Snapshot.read(dir), false, false)) {
      for (long g = 0; g < PAGES; g++) {
        assertArrayEquals(content(g), read(r, g), "page " + g);
      }
    }
  }

  @Test
  void aPageCorruptedOnDiskIsNeverServed() throws Exception {
    poke("memory.img", 3 * PAGE + 100, (byte) 0x55);
    try (GmemRuntime rt = Backends.open("kvm"); LazyRestore r = LazyRestore.start(rt, Snapshot.read(dir), false, false)) {
      rt.feature(Userfault.class).orElseThrow().deadline(java.time.Duration.ofSeconds(5));
      assertArrayEquals(content(2), read(r, 2));
      GmemException e = assertThrows(GmemException.class, () -> read(r, 3), "the corrupt page is refused, not installed");
      assertEquals(Errno.EIO, e.errno());
      assertTrue(r.server().paused(), "and the VM is paused for good: " + e.getMessage());
    }
  }

  @Test
  void aZeroBitFlippedOnDiskNeverServesZerosForContent() throws Exception {
    byte[] bits = Files.readAllBytes(dir.resolve("zero.bits"));
    bits[0] |= 1 << 4; // page 4 holds content
    Files.write(dir.resolve("zero.bits"), bits);
    try (GmemRuntime rt = Backends.open("kvm"); LazyRestore r = LazyRestore.start(rt, Snapshot.read(dir), false, false)) {
      rt.feature(Userfault.class).orElseThrow().deadline(java.time.Duration.ofSeconds(5));
      assertArrayEquals(content(5), read(r, 5), "the real zero page");
      GmemException e = assertThrows(GmemException.class, () -> read(r, 4), "page 4 is not a zero page");
      assertEquals(Errno.EIO, e.errno());
    }
  }

  @Test
  void aTruncatedImageIsRefusedAtRead() throws Exception {
    try (RandomAccessFile f = new RandomAccessFile(dir.resolve("memory.img").toFile(), "rw")) {
      f.setLength(8 * PAGE);
    }
    assertEquals(Errno.EINVAL, assertThrows(GmemException.class, () -> Snapshot.read(dir)).errno());
  }

  @Test
  void missingChecksumsAreRefusedAtRead() throws Exception {
    Files.delete(dir.resolve("memory.crc"));
    assertEquals(Errno.EINVAL, assertThrows(GmemException.class, () -> Snapshot.read(dir)).errno());
  }

  @Test
  void aCorruptMetaIsEinvalAtRead() throws Exception {
    poke("vm.meta", SLOT_FILE_AT, (byte) 7); // the memslot's file index: no file 7
    GmemException e = assertThrows(GmemException.class, () -> Snapshot.read(dir));
    assertEquals(Errno.EINVAL, e.errno(), e.getMessage());
    Files.write(dir.resolve("vm.meta"), java.util.Arrays.copyOf(Files.readAllBytes(dir.resolve("vm.meta")), 50));
    assertEquals(Errno.EINVAL, assertThrows(GmemException.class, () -> Snapshot.read(dir)).errno(), "truncated");
    Files.writeString(dir.resolve("workingset"), "3\nnot-a-gfn\n");
    assertEquals(Errno.EINVAL, assertThrows(GmemException.class, () -> Snapshot.read(dir).workingSet()).errno());
  }

  @Test
  void aRestoreThisRuntimeRefusesLeavesNoVmAndNoThreadBehind() throws Exception {
    poke("vm.meta", FILE_FLAGS_AT + 2, (byte) 0x40); // file flags bit 46: unknown to every runtime
    Snapshot snap = Snapshot.read(dir);
    try (GmemRuntime rt = Backends.open("kvm")) {
      long vms = HostileUserfaultTest.fds("kvm-vm");
      long gmemfds = HostileUserfaultTest.fds("memfd:");
      GmemException e = assertThrows(GmemException.class, () -> LazyRestore.start(rt, snap, false, true));
      assertEquals(Errno.EINVAL, e.errno());
      assertEquals(vms, HostileUserfaultTest.fds("kvm-vm"), "the VM created for the refused restore is closed");
      assertEquals(gmemfds, HostileUserfaultTest.fds("memfd:"));
    }
  }

  @Test
  void aRestoreOutlivingItsRuntimeClosesQuietlyAndStopsItsThread() throws Exception {
    long before = threads("gmem-page-source");
    GmemRuntime rt = Backends.open("kvm");
    LazyRestore r = LazyRestore.start(rt, Snapshot.read(dir), false, false); // no fill: pages stay missing
    assertEquals(before + 1, threads("gmem-page-source"));
    rt.close();
    r.close();
    r.close();
    long until = System.nanoTime() + 5_000_000_000L;
    while (threads("gmem-page-source") > before && System.nanoTime() < until) {
      Thread.sleep(10);
    }
    assertEquals(before, threads("gmem-page-source"), "the restore's page source thread ended");
    assertTrue(r.server().paused(), "closed with pages missing: paused, never resumed on missing data");
  }
}
