package dev.gmem.arch.tdx;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.GuestCall;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Shareability;
import dev.gmem.api.VcpuExit;
import java.util.ArrayList;
import java.util.List;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

/**
 * {@code TDG.VP.VMCALL<MapGPA>} as KVM handles it: 2 MiB chunks as {@code KVM_HC_MAP_GPA_RANGE}
 * exits that the VMM completes with {@code setShareability}, RETRY with r11 = the next GPA when an
 * interrupt is pending, INVALID_OPERAND / ALIGN_ERROR for bad ranges (no exit, nothing changed),
 * INVALID_OPERAND with r11 = the failing chunk when the VMM refuses.
 */
class MapGpaTest {
  private static final long PAGE = Td.PAGE;
  private static final long MIB = 1 << 20;

  /** Drives {@code call} like a VMM: each exit converts its range (file offset = GPA - BASE) and answers {@code answer}. */
  private static List<VcpuExit.Hypercall> drive(Td td, GuestCall call, long answer) {
    List<VcpuExit.Hypercall> exits = new ArrayList<>();
    for (VcpuExit.Hypercall exit; (exit = call.pendingExit()) != null; ) {
      exits.add(exit);
      if (answer == 0) {
        td.file.setShareability(exit.gpa() - Td.BASE, exit.npages() * PAGE, exit.toPrivate() ? Shareability.PRIVATE : Shareability.SHARED);
      }
      call.complete(answer);
    }
    return exits;
  }

  private static GuestCall mapGpa(Td td, long gpa, long size) {
    return td.vm.softwareVcpu().hypercall(TdxAbi.TDVMCALL_MAP_GPA, gpa, size);
  }

  @Test
  void fiveMibToSharedIsThreeExitsAndTheHostReadsThePages() {
    try (Td td = new Td(8 * MIB)) {
      td.vm.finalizeLaunch();
      long gpa = Td.BASE + MIB;
      GuestCall call = mapGpa(td, gpa | TdxAbi.SHARED_BIT, 5 * MIB);
      List<VcpuExit.Hypercall> exits = drive(td, call, 0);
      assertEquals(List.of(
          VcpuExit.Hypercall.mapGpaRange(gpa, 512, VcpuExit.Hypercall.DECRYPTED),
          VcpuExit.Hypercall.mapGpaRange(gpa + 2 * MIB, 512, VcpuExit.Hypercall.DECRYPTED),
          VcpuExit.Hypercall.mapGpaRange(gpa + 4 * MIB, 256, VcpuExit.Hypercall.DECRYPTED)), exits);
      assertEquals(TdxAbi.TDVMCALL_STATUS_SUCCESS, call.result().value());
      assertEquals(Shareability.SHARED, td.file.shareability(MIB, 5 * MIB).orElseThrow());
      assertNull(td.vm.softwareVcpu().write(gpa + 4 * MIB, new byte[] {0x42}, 0, 1, false));
      try (HostMapping m = td.file.map()) {
        assertEquals(0x42, m.getByte(5 * MIB));
      }

      GuestCall back = mapGpa(td, gpa, 2 * MIB);
      assertEquals(List.of(VcpuExit.Hypercall.mapGpaRange(gpa, 512, VcpuExit.Hypercall.ENCRYPTED)), drive(td, back, 0));
      assertEquals(Shareability.PRIVATE, td.file.shareability(MIB, 2 * MIB).orElseThrow());
    }
  }

  @Test
  void aPendingInterruptBetweenChunksIsRetryWithTheNextGpa() {
    try (Td td = new Td(8 * MIB)) {
      td.vm.finalizeLaunch();
      long gpa = (Td.BASE + MIB) | TdxAbi.SHARED_BIT;
      GuestCall call = mapGpa(td, gpa, 5 * MIB);
      VcpuExit.Hypercall first = call.pendingExit();
      td.file.setShareability(first.gpa() - Td.BASE, first.npages() * PAGE, Shareability.SHARED);
      td.module.raiseInterrupt();
      call.complete(0);
      assertNull(call.pendingExit());
      assertEquals(new GuestCall.Result(TdxAbi.TDVMCALL_STATUS_RETRY, new long[] {gpa + 2 * MIB}), call.result());
      assertTrue(!td.module.interruptPending(), "delivered as the guest resumes");

      // The guest calls again from r11.
      GuestCall rest = mapGpa(td, call.result().output(0), 3 * MIB);
      assertEquals(2, drive(td, rest, 0).size());
      assertEquals(TdxAbi.TDVMCALL_STATUS_SUCCESS, rest.result().value());
      assertEquals(Shareability.SHARED, td.file.shareability(MIB, 5 * MIB).orElseThrow());
    }
  }

  @Test
  void anInterruptBeforeTheLastChunkCompletesIsNoRetry() {
    try (Td td = new Td(4 * MIB)) {
      td.vm.finalizeLaunch();
      GuestCall call = mapGpa(td, Td.BASE | TdxAbi.SHARED_BIT, MIB);
      td.module.raiseInterrupt();
      drive(td, call, 0);
      assertEquals(TdxAbi.TDVMCALL_STATUS_SUCCESS, call.result().value(), "nothing left to do: no RETRY");
      assertTrue(td.module.interruptPending());
    }
  }

  @Test
  void theVmmsRefusalIsInvalidOperandAtTheFailingChunk() {
    try (Td td = new Td(8 * MIB)) {
      td.vm.finalizeLaunch();
      long gpa = (Td.BASE + MIB) | TdxAbi.SHARED_BIT;
      GuestCall call = mapGpa(td, gpa, 5 * MIB);
      VcpuExit.Hypercall first = call.pendingExit();
      td.file.setShareability(first.gpa() - Td.BASE, first.npages() * PAGE, Shareability.SHARED);
      call.complete(0);
      call.complete(-22); // the VMM refuses the second chunk
      assertNull(call.pendingExit());
      assertEquals(new GuestCall.Result(TdxAbi.TDVMCALL_STATUS_INVALID_OPERAND, new long[] {gpa + 2 * MIB}), call.result());
      assertEquals(Shareability.PRIVATE, td.file.shareability(3 * MIB), "the refused chunk stays as it was");
    }
  }

  @Test
  void badRangesFailWithoutAnExit() {
    try (Td td = new Td(4 * MIB)) {
      td.vm.finalizeLaunch();
      long s = TdxAbi.SHARED_BIT;
      long inv = TdxAbi.TDVMCALL_STATUS_INVALID_OPERAND;
      long align = TdxAbi.TDVMCALL_STATUS_ALIGN_ERROR;
      long[][] cases = {
          {Td.BASE, 0, inv}, // empty
          {-PAGE, 2 * PAGE, inv}, // wraps
          {1L << TdxAbi.GPAW, PAGE, inv}, // beyond the TD's GPA width
          {s - PAGE, 2 * PAGE, inv}, // private and shared mixed
          {(s - PAGE) + 1, 2 * PAGE, inv}, // mixed and unaligned: INVALID_OPERAND is checked first
          {Td.BASE + 1, PAGE, align},
          {Td.BASE, PAGE + 1, align},
          {Td.BASE | s | 0x800, PAGE, align},
      };
      long seq = td.file.shareabilitySequence();
      for (long[] c : cases) {
        GuestCall call = mapGpa(td, c[0], c[1]);
        assertNull(call.pendingExit(), () -> String.format("gpa 0x%x size 0x%x must not exit", c[0], c[1]));
        assertEquals(new GuestCall.Result(c[2], new long[] {c[0]}), call.result(), () -> String.format("gpa 0x%x size 0x%x", c[0], c[1]));
      }
      assertEquals(seq, td.file.shareabilitySequence(), "nothing converted");
      assertEquals(Shareability.PRIVATE, td.file.shareability(0, 4 * MIB).orElseThrow());
    }
  }

  /** Any valid range: exits are contiguous, at most 2 MiB each, start at the GPA without the shared bit and cover it exactly. */
  @Property(tries = 40)
  void chunksCoverTheRangeExactly(@ForAll @IntRange(min = 0, max = 2047) int startPage, @ForAll @IntRange(min = 1, max = 4096) int pages,
      @ForAll boolean shared) {
    try (Td td = new Td("memfd", 24 * MIB)) {
      td.vm.finalizeLaunch();
      long gpa = Td.BASE + startPage * PAGE;
      GuestCall call = mapGpa(td, shared ? gpa | TdxAbi.SHARED_BIT : gpa, pages * PAGE);
      long next = gpa;
      int n = 0;
      for (VcpuExit.Hypercall exit; (exit = call.pendingExit()) != null; n++) {
        assertEquals(next, exit.gpa());
        assertTrue(exit.npages() > 0 && exit.npages() <= 512);
        assertEquals(!shared, exit.toPrivate());
        next += exit.npages() * PAGE;
        call.complete(0);
      }
      assertEquals(gpa + pages * PAGE, next);
      assertEquals((pages + 511) / 512, n);
      assertArrayEquals(new long[0], call.result().outputs());
      assertEquals(TdxAbi.TDVMCALL_STATUS_SUCCESS, call.result().value());
    }
  }
}
