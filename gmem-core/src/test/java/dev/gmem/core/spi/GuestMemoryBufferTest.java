package dev.gmem.core.spi;

import static dev.gmem.core.conformance.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.GuestMemory;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import java.nio.ByteBuffer;
import java.nio.ReadOnlyBufferException;
import java.util.Arrays;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@link GuestMemory#read(long, ByteBuffer)} and {@link GuestMemory#write(long, ByteBuffer)}: the
 * byte[] copies' rules (across memslots; EFAULT for holes and private pages with nothing changed,
 * the buffer's position included) for direct and heap buffers.
 */
class GuestMemoryBufferTest {
  static final int PAGE = GuestMemoryViewTest.PAGE;
  /** Slot 0: file A at [0, 4 pages); slot 1: file B at [4, 8 pages); nothing from 8 pages on. */
  static final long B = GuestMemoryViewTest.B;
  static final long HOLE = GuestMemoryViewTest.HOLE;

  static Stream<String> backends() {
    return Backends.names();
  }

  private static byte[] pattern(int n, int seed) {
    return GuestMemoryViewTest.pattern(n, seed);
  }

  @ParameterizedTest
  @MethodSource("backends")
  void bufferCopiesCrossMemslotsAndFailLikeTheArrayCopies(String backend) throws Exception {
    GuestMemoryViewTest.withTwoSlots(backend, (vm, a, b, ma, mb) -> {
      GuestMemory mem = vm.guestMemory();
      byte[] data = pattern(2 * PAGE, 5);
      for (boolean direct : new boolean[] {true, false}) {
        ByteBuffer src = direct ? ByteBuffer.allocateDirect(data.length + 16) : ByteBuffer.allocate(data.length + 16);
        src.position(16);
        src.duplicate().put(data);
        mem.write(B - PAGE, src);
        assertEquals(src.limit(), src.position(), "the source buffer is consumed");
        byte[] inA = new byte[PAGE];
        byte[] inB = new byte[PAGE];
        ma.read(3L * PAGE, inA, 0, PAGE);
        mb.read(0, inB, 0, PAGE);
        assertArrayEquals(Arrays.copyOf(data, PAGE), inA, "the first page landed in file A");
        assertArrayEquals(Arrays.copyOfRange(data, PAGE, 2 * PAGE), inB, "the second in file B");

        ByteBuffer dst = direct ? ByteBuffer.allocateDirect(data.length + 8) : ByteBuffer.allocate(data.length + 8);
        dst.position(8);
        mem.read(B - PAGE, dst);
        assertEquals(dst.limit(), dst.position(), "the destination is filled");
        byte[] back = new byte[data.length];
        dst.position(8);
        dst.get(back);
        assertArrayEquals(data, back);
        data = pattern(2 * PAGE, 9); // the heap round writes other bytes
      }

      b.setShareability(PAGE, PAGE, Shareability.PRIVATE); // GPA B + PAGE
      byte[] before = new byte[PAGE];
      mem.read(B - PAGE, before, 0, PAGE);
      ByteBuffer over = ByteBuffer.allocateDirect(3 * PAGE);
      over.put(0, pattern(3 * PAGE, 1));
      expect(Errno.EFAULT, () -> mem.write(B - PAGE, over));
      assertEquals(0, over.position(), "a failed write consumes nothing");
      byte[] after = new byte[PAGE];
      mem.read(B - PAGE, after, 0, PAGE);
      assertArrayEquals(before, after, "and changes nothing before the private page");
      ByteBuffer into = ByteBuffer.allocateDirect(2 * PAGE);
      expect(Errno.EFAULT, () -> mem.read(B, into));
      assertEquals(0, into.position(), "a failed read fills nothing");
      assertEquals(0, into.getLong(0));
      expect(Errno.EFAULT, () -> mem.read(HOLE - 8, ByteBuffer.allocateDirect(16)));
      assertThrows(ReadOnlyBufferException.class, () -> mem.read(0, ByteBuffer.allocateDirect(8).asReadOnlyBuffer()));
    });
  }
  @ParameterizedTest
  @MethodSource("backends")
  void aBulkWritePopulatesItsWholePagesAndLeavesTheRestAlone(String backend) throws Exception {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile f = vm.createGuestMemFile(64L * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, 64L * PAGE, f, 0);
      GuestMemory mem = vm.guestMemory();
      // unaligned at both ends: 40 whole pages populated in one call, the partial ones by the copy
      long at = 3L * PAGE + 100;
      byte[] data = pattern(41 * PAGE, 7);
      ByteBuffer src = ByteBuffer.allocateDirect(data.length);
      src.put(0, data);
      mem.write(at, src);
      byte[] back = new byte[data.length];
      mem.read(at, back, 0, back.length);
      assertArrayEquals(data, back);
      byte[] edge = new byte[100];
      mem.read(3L * PAGE, edge, 0, 100);
      assertArrayEquals(new byte[100], edge, "the bytes before the write stay zero");
      byte[] tail = new byte[PAGE - 100];
      mem.read(at + data.length, tail, 0, tail.length);
      assertArrayEquals(new byte[tail.length], tail, "and those after it");

      f.setShareability(50L * PAGE, PAGE, Shareability.PRIVATE);
      ByteBuffer over = ByteBuffer.allocateDirect(20 * PAGE);
      over.put(0, pattern(20 * PAGE, 3));
      expect(Errno.EFAULT, () -> mem.write(40L * PAGE, over));
      byte[] kept = new byte[PAGE];
      mem.read(40L * PAGE, kept, 0, PAGE);
      assertArrayEquals(Arrays.copyOfRange(data, (int) (40L * PAGE - at), (int) (41L * PAGE - at)), kept,
          "a bulk write over a private page changes nothing");
    }
  }
}
