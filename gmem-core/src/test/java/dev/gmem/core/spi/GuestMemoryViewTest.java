package dev.gmem.core.spi;

import static dev.gmem.core.conformance.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.GuestMemory;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.channels.Channels;
import java.util.Arrays;
import java.util.Optional;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The VMM's view of guest memory by GPA across two memslots (two files) and a hole: copies,
 * atomics and channel copies with the host's rules, EFAULT for holes and private pages with
 * nothing changed, memslot deletion, and the file's byte-range shareability with its sequence.
 */
class GuestMemoryViewTest {
  static final int PAGE = 4096;
  /** Slot 0: file A at [0, 4 pages); slot 1: file B at [4, 8 pages); nothing from 8 pages on. */
  static final long B = 4L * PAGE;
  static final long HOLE = 8L * PAGE;

  static Stream<String> backends() {
    return Backends.names();
  }

  interface Body {
    void run(Vm vm, GuestMemFile a, GuestMemFile b, HostMapping ma, HostMapping mb) throws Exception;
  }

  static void withTwoSlots(String backend, Body body) throws Exception {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile a = vm.createGuestMemFile(4L * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      GuestMemFile b = vm.createGuestMemFile(4L * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, 4L * PAGE, a, 0);
      vm.setMemoryRegion(1, Memslot.GUEST_MEMFD, B, 4L * PAGE, b, 0);
      try (HostMapping ma = a.map(); HostMapping mb = b.map()) {
        body.run(vm, a, b, ma, mb);
      }
    }
  }

  static byte[] pattern(int n, int seed) {
    byte[] p = new byte[n];
    for (int i = 0; i < n; i++) {
      p[i] = (byte) (i * 7 + seed);
    }
    return p;
  }

  @ParameterizedTest
  @MethodSource("backends")
  void copiesCrossMemslotsAndHolesAndPrivatePagesFailWithEfaultChangingNothing(String backend) throws Exception {
    withTwoSlots(backend, (vm, a, b, ma, mb) -> {
      GuestMemory mem = vm.guestMemory();
      byte[] data = pattern(0x200, 3);
      mem.write(B - 0x100, data, 0, data.length);
      byte[] inA = new byte[0x100];
      byte[] inB = new byte[0x100];
      ma.read(4L * PAGE - 0x100, inA, 0, 0x100);
      mb.read(0, inB, 0, 0x100);
      assertArrayEquals(Arrays.copyOf(data, 0x100), inA, "the first half landed in file A");
      assertArrayEquals(Arrays.copyOfRange(data, 0x100, 0x200), inB, "the second half in file B");
      byte[] back = new byte[0x200];
      mem.read(B - 0x100, back, 0, back.length);
      assertArrayEquals(data, back);

      b.setShareability(PAGE, PAGE, Shareability.PRIVATE); // GPA B + PAGE
      byte[] before = new byte[2 * PAGE];
      mem.read(B - PAGE, before, 0, PAGE);
      assertTrue(expect(Errno.EFAULT, () -> mem.read(B + PAGE + 8, new byte[8], 0, 8)).getMessage().contains("0x" + Long.toHexString(B + PAGE + 8)));
      expect(Errno.EFAULT, () -> mem.write(B - 16, new byte[2 * PAGE], 0, 2 * PAGE));
      byte[] after = new byte[PAGE];
      mem.read(B - PAGE, after, 0, PAGE);
      assertArrayEquals(Arrays.copyOf(before, PAGE), after, "a failed write changed nothing before the private page");
      assertEquals(java.nio.ByteBuffer.wrap(data, 0x100, 8).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong(), mb.getLong(0),
          "nor in file B's shared page inside the failed range");

      expect(Errno.EFAULT, () -> mem.read(HOLE, new byte[1], 0, 1));
      expect(Errno.EFAULT, () -> mem.write(HOLE - 4, new byte[8], 0, 8));
      byte[] tail = new byte[4];
      mb.read(4L * PAGE - 4, tail, 0, 4);
      assertArrayEquals(new byte[4], tail, "no partial write before the hole");
      assertFalse(mem.isAccessible(HOLE - 4, 8));
      assertFalse(mem.isAccessible(B, 2L * PAGE));
      assertTrue(mem.isAccessible(0, B + PAGE));
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void atomicsAreAlignedSingleCopyAndSeenThroughTheFile(String backend) throws Exception {
    withTwoSlots(backend, (vm, a, b, ma, mb) -> {
      GuestMemory mem = vm.guestMemory();
      mem.storeLong(B + 0x18, 0x1122334455667788L);
      assertEquals(0x1122334455667788L, mb.getLong(0x18), "little-endian, in file B");
      assertTrue(mem.compareAndSetLong(B + 0x18, 0x1122334455667788L, 5));
      assertFalse(mem.compareAndSetLong(B + 0x18, 0x1122334455667788L, 6), "the expected value is gone");
      assertEquals(5, mem.loadLong(B + 0x18));
      mem.storeInt(0x40, 0xcafe);
      assertTrue(mem.compareAndSetInt(0x40, 0xcafe, 0xbeef));
      assertEquals(0xbeef, mem.loadInt(0x40));
      assertEquals(0xbeef, ma.getLong(0x40));
      expect(Errno.EINVAL, () -> mem.loadLong(0x44));
      expect(Errno.EINVAL, () -> mem.storeInt(0x41, 1));
      a.setShareability(0, PAGE, Shareability.PRIVATE);
      expect(Errno.EFAULT, () -> mem.compareAndSetInt(0x40, 0xbeef, 1));
      expect(Errno.EFAULT, () -> mem.loadLong(HOLE));
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void channelCopiesGoPageByPageAndStopAtTheFirstUnreachablePage(String backend) throws Exception {
    withTwoSlots(backend, (vm, a, b, ma, mb) -> {
      GuestMemory mem = vm.guestMemory();
      byte[] image = pattern(5 * PAGE, 11);
      assertEquals(5 * PAGE, mem.readFrom(Channels.newChannel(new ByteArrayInputStream(image)), PAGE, 5L * PAGE));
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      assertEquals(5 * PAGE, mem.writeTo(Channels.newChannel(out), PAGE, 5L * PAGE));
      assertArrayEquals(image, out.toByteArray());
      assertEquals(image[4 * PAGE], mb.getByte(PAGE), "page 5 of the image is file B's page 1");

      assertEquals(2 * PAGE, mem.readFrom(Channels.newChannel(new ByteArrayInputStream(pattern(2 * PAGE, 1))), 6L * PAGE, 4L * PAGE),
          "the stream ended before the hole");
      assertEquals(2 * PAGE, mem.writeTo(Channels.newChannel(new ByteArrayOutputStream()), 6L * PAGE, 4L * PAGE), "the hole ends it");
      expect(Errno.EFAULT, () -> mem.writeTo(Channels.newChannel(new ByteArrayOutputStream()), HOLE, PAGE));
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void deletingAMemslotMakesItsRangeAHole(String backend) throws Exception {
    withTwoSlots(backend, (vm, a, b, ma, mb) -> {
      mb.putLong(0, 42);
      assertEquals(42, vm.guestMemory().loadLong(B));
      Memslot deleted = vm.deleteMemoryRegion(1);
      assertEquals(1, deleted.slot());
      assertEquals(1, vm.memslots().size());
      expect(Errno.EFAULT, () -> vm.guestMemory().loadLong(B));
      expect(Errno.EINVAL, () -> vm.deleteMemoryRegion(1));
      vm.setMemoryRegion(1, Memslot.GUEST_MEMFD, B, 4L * PAGE, b, 0);
      assertEquals(42, vm.guestMemory().loadLong(B), "the same file range binds again");
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void theFileAnswersForAByteRangeAndItsSequenceMovesWithEveryConversion(String backend) throws Exception {
    withTwoSlots(backend, (vm, a, b, ma, mb) -> {
      long seq = a.shareabilitySequence();
      assertEquals(Optional.of(Shareability.SHARED), a.shareability(1, 3L * PAGE));
      a.setShareability(2L * PAGE, PAGE, Shareability.PRIVATE);
      assertNotEquals(seq, a.shareabilitySequence());
      assertEquals(Optional.empty(), a.shareability(PAGE, 2L * PAGE), "mixed");
      assertEquals(Optional.of(Shareability.PRIVATE), a.shareability(2L * PAGE + 5, 10), "the bytes of one private page");
      long again = a.shareabilitySequence();
      a.setShareability(2L * PAGE, PAGE, Shareability.PRIVATE);
      assertEquals(again, a.shareabilitySequence(), "a conversion that changes nothing leaves it");
      expect(Errno.EINVAL, () -> a.shareability(0, 0));
      expect(Errno.EINVAL, () -> a.shareability(3L * PAGE, 2L * PAGE));
    });
  }
}
