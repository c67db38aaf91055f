package dev.gmem.directmap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** {@code write()} population: fills absent shared pages, seals them, EEXIST on a sealed page, errors that change nothing. */
class WritePopulationTest {
  private static final long PAGE = 4096;
  private static final long FLAGS = GmemFlags.MMAP | GmemFlags.INIT_SHARED | GmemFlags.NO_DIRECT_MAP | GmemFlags.WRITE;

  private static ByteBuffer pages(int n, int value) {
    ByteBuffer b = ByteBuffer.allocate((int) (n * PAGE));
    for (int i = 0; i < b.capacity(); i++) {
      b.put(i, (byte) value);
    }
    return b;
  }

  @ParameterizedTest
  @MethodSource("dev.gmem.directmap.Runtimes#backends")
  void writeFillsAbsentPagesThenEexistOnceSealed(String backend) {
    try (GmemRuntime rt = Runtimes.open(backend); GuestMemFile f = rt.createVm(VmType.DEFAULT).createGuestMemFile(16 * PAGE, FLAGS);
        HostMapping m = f.map()) {
      DirectMapFeature dm = Runtimes.feature(rt);
      ByteBuffer src = pages(2, 0x33);
      assertEquals(2 * PAGE, f.write(0, src));
      assertEquals(0, src.remaining());
      assertEquals(2, f.inode().allocatedPages());
      assertTrue(dm.isRemoved(f.inode().ino(), 1));
      assertEquals(0x33, m.getByte(2 * PAGE - 1));

      ByteBuffer again = pages(1, 0x44);
      GmemException e = assertThrows(GmemException.class, () -> f.write(PAGE, again));
      assertEquals(Errno.EEXIST, e.errno());
      assertEquals(0, again.position(), "nothing consumed");
      assertEquals(0x33, m.getByte(PAGE), "nothing written");

      // A short write: pages 2 and 3 are absent, page 4 was faulted in by the host.
      assertEquals(0, m.getLong(4 * PAGE));
      ByteBuffer three = pages(3, 0x55);
      assertEquals(2 * PAGE, f.write(2 * PAGE, three));
      assertEquals(2 * PAGE, three.position());
      assertEquals(0x55, m.getByte(3 * PAGE));
      assertEquals(0, m.getByte(4 * PAGE));
    }
  }

  /**
   * A write over a run of absent pages tells the listeners once per run (one zap): fresh pages
   * cost no mprotect, a run of punched (restored, still held) pages exactly one, and every page of
   * the run ends removed from gmem's direct map.
   */
  @ParameterizedTest
  @MethodSource("dev.gmem.directmap.Runtimes#backends")
  void aWriteZapsOncePerRun(String backend) {
    try (GmemRuntime rt = Runtimes.open(backend); GuestMemFile f = rt.createVm(VmType.DEFAULT).createGuestMemFile(16 * PAGE, FLAGS)) {
      DirectMapFeature dm = Runtimes.feature(rt);
      long ino = f.inode().ino();
      long protects = dm.stats().viewProtects();
      long zaps = dm.stats().zaps();
      assertEquals(8 * PAGE, f.write(0, pages(8, 0x21)));
      assertEquals(zaps + 8, dm.stats().zaps(), "eight folios removed");
      assertEquals(protects, dm.stats().viewProtects(), "fresh pages were never in gmem's direct map: no mprotect");

      f.punchHole(2 * PAGE, 4 * PAGE); // four restores, one mprotect each
      assertEquals(protects + 4, dm.stats().viewProtects());
      for (long i = 2; i < 6; i++) {
        assertEquals(0, KernelPaths.copyFromUser(dm.linearAddress(ino) + i * PAGE, 8), "page " + i + " back in gmem's direct map");
      }
      assertEquals(4 * PAGE, f.write(2 * PAGE, pages(4, 0x22)));
      assertEquals(protects + 5, dm.stats().viewProtects(), "the run of four held pages left gmem's direct map with one mprotect");
      for (long i = 0; i < 8; i++) {
        assertTrue(dm.isRemoved(ino, i));
        assertEquals(Errno.EFAULT.code(), KernelPaths.copyFromUser(dm.linearAddress(ino) + i * PAGE, 8), "page " + i);
      }
    }
  }

  /** A write across several stripe chunks ends at the first sealed page, wherever in a chunk it lies, and writes exactly the pages before it. */
  @ParameterizedTest
  @MethodSource("dev.gmem.directmap.Runtimes#backends")
  void aLongWriteStopsExactlyAtTheFirstSealedPage(String backend) {
    try (GmemRuntime rt = Runtimes.open(backend); GuestMemFile f = rt.createVm(VmType.DEFAULT).createGuestMemFile(256 * PAGE, FLAGS);
        HostMapping m = f.map()) {
      DirectMapFeature dm = Runtimes.feature(rt);
      m.putLong(150 * PAGE, 9); // page 150 is present, so sealed
      ByteBuffer src = pages(200, 0x77);
      assertEquals(140 * PAGE, f.write(10 * PAGE, src), "pages 10..149, through chunks [10,64), [64,128), [128,150)");
      assertEquals(140 * PAGE, src.position());
      assertEquals(141, f.inode().allocatedPages());
      assertEquals(0x77, m.getByte(10 * PAGE));
      assertEquals(0x77, m.getByte(150 * PAGE - 1));
      assertEquals(9, m.getLong(150 * PAGE), "the sealed page is untouched");
      for (long i = 10; i <= 150; i++) {
        assertTrue(dm.isRemoved(f.inode().ino(), i), "page " + i);
      }
      assertEquals(Errno.EEXIST, assertThrows(GmemException.class, () -> f.write(150 * PAGE, pages(2, 1))).errno());
      assertEquals(141, f.inode().allocatedPages(), "a refused write changes nothing");
      assertEquals(0, m.getLong(151 * PAGE));
    }
  }

  @ParameterizedTest
  @MethodSource("dev.gmem.directmap.Runtimes#backends")
  void badWritesChangeNothing(String backend) {
    try (GmemRuntime rt = Runtimes.open(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      try (GuestMemFile f = vm.createGuestMemFile(16 * PAGE, FLAGS);
          GuestMemFile priv = vm.createGuestMemFile(16 * PAGE, GmemFlags.MMAP | GmemFlags.NO_DIRECT_MAP | GmemFlags.WRITE)) {
        assertEquals(Errno.EINVAL, assertThrows(GmemException.class, () -> f.write(1, pages(1, 1))).errno());
        assertEquals(Errno.EINVAL, assertThrows(GmemException.class, () -> f.write(0, ByteBuffer.allocate(100))).errno());
        assertEquals(Errno.EINVAL, assertThrows(GmemException.class, () -> f.write(15 * PAGE, pages(2, 1))).errno());
        assertEquals(Errno.EINVAL, assertThrows(GmemException.class, () -> f.write(-PAGE, pages(1, 1))).errno());
        assertEquals(0, f.inode().allocatedPages());
        ByteBuffer src = pages(1, 1);
        assertEquals(Errno.EACCES, assertThrows(GmemException.class, () -> priv.write(0, src)).errno(), "write only where the memory is shared");
        assertEquals(0, src.position());
        assertEquals(0, priv.inode().allocatedPages());
        assertEquals(0, f.write(0, ByteBuffer.allocate(0)));
      }
    }
  }

  @ParameterizedTest
  @MethodSource("dev.gmem.directmap.Runtimes#backends")
  void withoutNoDirectMapAPresentPageIsOverwritten(String backend) {
    try (GmemRuntime rt = Runtimes.open(backend);
        GuestMemFile f = rt.createVm(VmType.DEFAULT).createGuestMemFile(4 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED | GmemFlags.WRITE);
        HostMapping m = f.map()) {
      m.putLong(0, 7);
      assertEquals(PAGE, f.write(0, pages(1, 0x66)));
      assertEquals(0x66, m.getByte(0));
      assertEquals(1, f.inode().allocatedPages());
    }
  }

  /**
   * Writes and first faults (host accessors and the software vCPU) race over every page: each
   * page ends either written (the write came first: all its bytes are the pattern) or zero with
   * EEXIST (a fault came first and sealed it) — never half written, never both.
   */
  @ParameterizedTest
  @MethodSource("dev.gmem.directmap.Runtimes#backends")
  void writesAndFaultsInterleave(String backend) throws Exception {
    int n = 64;
    Random random = new Random(12);
    try (GmemRuntime rt = Runtimes.open(backend)) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      for (int round = 0; round < 4; round++) {
        try (GuestMemFile f = vm.createGuestMemFile(n * PAGE, FLAGS); HostMapping m = f.map()) {
          vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, n * PAGE, f, 0);
          List<Integer> writeOrder = shuffled(n, random);
          List<Integer> faultOrder = shuffled(n, random);
          boolean[] written = new boolean[n];
          List<Throwable> errors = Collections.synchronizedList(new ArrayList<>());
          CountDownLatch start = new CountDownLatch(1);
          Thread writer = new Thread(() -> {
            await(start);
            for (int i : writeOrder) {
              try {
                written[i] = f.write(i * PAGE, pages(1, (i % 120) + 1)) == PAGE;
              } catch (GmemException e) {
                if (e.errno() != Errno.EEXIST) {
                  errors.add(e);
                }
              }
            }
          });
          Thread faulter = new Thread(() -> {
            await(start);
            byte[] b = new byte[8];
            for (int i : faultOrder) {
              if ((i & 1) == 0) {
                m.getLong(i * PAGE + 8);
              } else {
                vm.softwareVcpu().read(i * PAGE + 16, b, 0, 8, false);
              }
            }
          });
          writer.start();
          faulter.start();
          start.countDown();
          writer.join();
          faulter.join();
          assertTrue(errors.isEmpty(), () -> errors.toString());
          for (int i = 0; i < n; i++) {
            byte expect = written[i] ? (byte) ((i % 120) + 1) : 0;
            byte[] page = new byte[(int) PAGE];
            m.read(i * PAGE, page, 0, page.length);
            for (byte x : page) {
              assertEquals(expect, x, "page " + i + (written[i] ? " written" : " faulted first"));
            }
          }
          assertEquals(n, f.inode().allocatedPages());
          vm.deleteMemoryRegion(0);
        }
      }
    }
  }

  private static List<Integer> shuffled(int n, Random random) {
    List<Integer> l = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      l.add(i);
    }
    Collections.shuffle(l, random);
    return l;
  }

  private static void await(CountDownLatch latch) {
    try {
      latch.await();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
