package dev.gmem.core.vcpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.gmem.api.VcpuExit;
import dev.gmem.core.sys.Kvm.Run;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.api.Test;

/**
 * Decoding of exits this host cannot produce on demand (kvm_pvm never reports MEMORY_FAULT), on a
 * synthetic kvm_run laid out as in include/uapi/linux/kvm.h.
 */
class ExitDecoderTest {
  private final ByteBuffer run = ByteBuffer.allocate(3 * 4096).order(ByteOrder.LITTLE_ENDIAN);
  private final ExitDecoder decoder = new ExitDecoder(run);

  @Test
  void memoryFault() {
    run.putInt(Run.EXIT_REASON, Run.EXIT_MEMORY_FAULT);
    run.putLong(Run.MEMORY_FAULT_FLAGS, VcpuExit.MemoryFault.FLAG_PRIVATE);
    run.putLong(Run.MEMORY_FAULT_GPA, 0xc000_0000L);
    run.putLong(Run.MEMORY_FAULT_SIZE, 4096);
    VcpuExit.MemoryFault f = new VcpuExit.MemoryFault(8, 0xc000_0000L, 4096);
    assertEquals(f, decoder.decode());
    assertEquals(f, decoder.memoryFault());
    assertEquals(true, f.isPrivate());
  }

  @Test
  void internalErrorKeepsNdataWords() {
    run.putInt(Run.EXIT_REASON, Run.EXIT_INTERNAL_ERROR);
    run.putInt(Run.INTERNAL_SUBERROR, VcpuExit.InternalError.SUBERROR_EMULATION);
    run.putInt(Run.INTERNAL_NDATA, 2);
    run.putLong(Run.INTERNAL_DATA, 7);
    run.putLong(Run.INTERNAL_DATA + 8, 9);
    run.putLong(Run.INTERNAL_DATA + 16, 11);
    VcpuExit.InternalError e = (VcpuExit.InternalError) decoder.decode();
    assertEquals(new VcpuExit.InternalError(1, new long[] {7, 9}), e);
    assertArrayEquals(new long[] {7, 9}, e.data());
  }

  @Test
  void ndataIsClampedToTheArray() {
    run.putInt(Run.EXIT_REASON, Run.EXIT_INTERNAL_ERROR);
    run.putInt(Run.INTERNAL_NDATA, 1000);
    assertEquals(Run.INTERNAL_DATA_MAX, ((VcpuExit.InternalError) decoder.decode()).data().length);
  }

  @Test
  void failEntrySystemEventShutdownAndOthers() {
    run.putInt(Run.EXIT_REASON, Run.EXIT_FAIL_ENTRY);
    run.putLong(Run.FAIL_ENTRY_REASON, 0x80000021L);
    assertEquals(new VcpuExit.FailEntry(0x80000021L), decoder.decode());
    run.putInt(Run.EXIT_REASON, Run.EXIT_SYSTEM_EVENT);
    run.putInt(Run.SYSTEM_EVENT_TYPE, VcpuExit.SystemEvent.RESET);
    assertEquals(new VcpuExit.SystemEvent(2), decoder.decode());
    run.putInt(Run.EXIT_REASON, Run.EXIT_SHUTDOWN);
    assertEquals(new VcpuExit.Shutdown(), decoder.decode());
    run.putInt(Run.EXIT_REASON, 4); // KVM_EXIT_DEBUG
    assertEquals(new VcpuExit.Other(4), decoder.decode());
  }

  @Test
  void ioOutReadsDataAtDataOffsetAndRejectsAnOffsetOutsideTheMapping() {
    run.putInt(Run.EXIT_REASON, Run.EXIT_IO);
    run.put(Run.IO_DIRECTION, (byte) Run.IO_OUT);
    run.put(Run.IO_SIZE, (byte) 2);
    run.putShort(Run.IO_PORT, (short) 0xcf8);
    run.putInt(Run.IO_COUNT, 2);
    run.putLong(Run.IO_DATA_OFFSET, 4096);
    run.put(4096, new byte[] {1, 2, 3, 4});
    assertEquals(new VcpuExit.Io(true, 0xcf8, 2, 2, new byte[] {1, 2, 3, 4}), decoder.decode());
    run.putLong(Run.IO_DATA_OFFSET, run.capacity() - 2);
    assertThrows(IllegalStateException.class, decoder::decode);
  }

  @Test
  void mmioWriteKeepsOnlyLengthBytes() {
    run.putInt(Run.EXIT_REASON, Run.EXIT_MMIO);
    run.putLong(Run.MMIO_PHYS_ADDR, 0xfee00000L);
    run.putLong(Run.MMIO_DATA, 0x1122_3344_5566_7788L);
    run.putInt(Run.MMIO_LEN, 2);
    run.put(Run.MMIO_IS_WRITE, (byte) 1);
    assertEquals(new VcpuExit.Mmio(0xfee00000L, true, 2, 0x7788), decoder.decode());
  }

  @Test
  void exitRecordsWithArraysAreValues() {
    byte[] data = {5};
    VcpuExit.Io io = new VcpuExit.Io(true, 1, 1, 1, data);
    data[0] = 6;
    assertEquals(5, io.data()[0], "copied on construction");
    io.data()[0] = 7;
    assertEquals(5, io.value(), "copied on access");
    assertEquals(new VcpuExit.Io(true, 1, 1, 1, new byte[] {5}).hashCode(), io.hashCode());
    assertNotEquals(new VcpuExit.Io(false, 1, 1, 1, new byte[] {5}), io);
    assertThrows(IllegalArgumentException.class, () -> new VcpuExit.Io(true, 1, 2, 1, new byte[1]));
  }

  @Test
  void hypercallCarriesNrSixArgsAndFlags() {
    run.putInt(Run.EXIT_REASON, Run.EXIT_HYPERCALL);
    run.putLong(Run.HYPERCALL_NR, VcpuExit.Hypercall.MAP_GPA_RANGE);
    for (int i = 0; i < 6; i++) {
      run.putLong(Run.HYPERCALL_ARGS + 8 * i, 0x1000L * (i + 1));
    }
    run.putLong(Run.HYPERCALL_ARGS + 16, VcpuExit.Hypercall.ENCRYPTED);
    run.putLong(Run.HYPERCALL_RET, 0x77);
    run.putLong(Run.HYPERCALL_FLAGS, VcpuExit.Hypercall.FLAG_LONG_MODE);
    VcpuExit.Hypercall hc = (VcpuExit.Hypercall) decoder.decode();
    assertEquals(new VcpuExit.Hypercall(12, new long[] {0x1000, 0x2000, 0x10, 0x4000, 0x5000, 0x6000}, 1), hc);
    assertEquals(true, hc.isMapGpaRange());
    assertEquals(0x1000, hc.gpa());
    assertEquals(0x2000, hc.npages());
    assertEquals(true, hc.toPrivate());
  }
}
