package dev.gmem.core.vcpu;

import static dev.gmem.core.vcpu.GuestPrograms.CODE;
import static dev.gmem.core.vcpu.GuestPrograms.DATA;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.DescriptorTable;
import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.Registers;
import dev.gmem.api.Segment;
import dev.gmem.api.SpecialRegisters;
import dev.gmem.api.VcpuExit;
import java.io.ByteArrayOutputStream;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Runs hand-assembled guests on the real /dev/kvm, in guest_memfd memory. */
class KvmVcpuTest {

  private static VcpuExit.Io out(int port, int size, byte... data) {
    return new VcpuExit.Io(true, port, size, data.length / size, data);
  }

  @Test
  void realModeGuestComputesInGuestMemfdMemoryAndSeesAPunchedHoleAsZeros() {
    try (TestGuest g = TestGuest.create()) {
      g.load(CODE, GuestPrograms.REAL_MODE_INCREMENT);
      g.ram.put((int) DATA, (byte) 0x41);
      g.startRealMode(CODE);

      assertEquals(out(0x10, 1, (byte) 0x42), g.vcpu.run());
      assertEquals(new VcpuExit.Hlt(), g.vcpu.run());
      assertEquals(0x42, g.ram.get((int) DATA + 1), "the guest's store, read through the host mapping");
      assertEquals(CODE + GuestPrograms.REAL_MODE_INCREMENT.length, g.vcpu.registers().rip(), "rip is past the hlt");

      g.punchHole(DATA, 0x1000);
      assertEquals(0, g.ram.get((int) DATA + 1), "punched page reads as zeros on the host");
      g.vcpu.setRegisters(g.vcpu.registers().withRip(CODE));
      assertEquals(out(0x10, 1, (byte) 1), g.vcpu.run(), "the guest read 0 from the punched page");
      assertEquals(new VcpuExit.Hlt(), g.vcpu.run());
      assertEquals(1, g.ram.get((int) DATA + 1));
    }
  }

  @Test
  void inExitsAreAnsweredWithCompleteIn() {
    try (TestGuest g = TestGuest.create()) {
      g.load(CODE, GuestPrograms.REAL_MODE_IN_ECHO);
      g.startRealMode(CODE);

      assertEquals(new VcpuExit.Io(false, 0x20, 1, 1, new byte[1]), g.vcpu.run());
      g.vcpu.completeIn(new byte[] {(byte) 0x9c});
      assertEquals(out(0x21, 1, (byte) 0x9c), g.vcpu.run());

      VcpuExit.Io word = (VcpuExit.Io) g.vcpu.run();
      assertEquals(new VcpuExit.Io(false, 0x22, 2, 1, new byte[2]), word);
      assertThrows(IllegalArgumentException.class, () -> g.vcpu.completeIn(new byte[1]));
      g.vcpu.completeIn(new byte[] {0x34, 0x12});
      VcpuExit.Io echoed = (VcpuExit.Io) g.vcpu.run();
      assertEquals(out(0x23, 2, (byte) 0x34, (byte) 0x12), echoed);
      assertEquals(0x1234, echoed.value());
      assertEquals(new VcpuExit.Hlt(), g.vcpu.run());
    }
  }

  @Test
  void anUnansweredInReadsAllOnesAndCompletingWithoutAnInIsAnError() {
    try (TestGuest g = TestGuest.create()) {
      g.load(CODE, GuestPrograms.REAL_MODE_IN_ECHO);
      g.startRealMode(CODE);
      assertThrows(IllegalStateException.class, () -> g.vcpu.completeIn(new byte[1]));

      assertInstanceOf(VcpuExit.Io.class, g.vcpu.run());
      assertEquals(out(0x21, 1, (byte) 0xff), g.vcpu.run());
      assertThrows(IllegalStateException.class, () -> g.vcpu.completeIn(new byte[1]), "an OUT needs no answer");
    }
  }

  @Test
  void stringOutputDeliversEveryByteInOrder() {
    try (TestGuest g = TestGuest.create()) {
      g.load(CODE, GuestPrograms.REAL_MODE_REP_OUTSB);
      g.load(DATA, new byte[] {1, 2, 3, 4});
      g.startRealMode(CODE);

      // KVM may split a REP OUTS into several exits; the bytes and their order are what counts.
      ByteArrayOutputStream seen = new ByteArrayOutputStream();
      VcpuExit exit;
      while ((exit = g.vcpu.run()) instanceof VcpuExit.Io) {
        VcpuExit.Io io = (VcpuExit.Io) exit;
        assertTrue(io.out());
        assertEquals(0x30, io.port());
        assertEquals(1, io.size());
        seen.writeBytes(io.data());
      }
      assertEquals(new VcpuExit.Hlt(), exit);
      assertArrayEquals(new byte[] {1, 2, 3, 4}, seen.toByteArray());
    }
  }

  @Test
  void accessesOutsideEveryMemslotAreMmioExits() {
    try (TestGuest g = TestGuest.create()) {
      g.load(CODE, GuestPrograms.REAL_MODE_MMIO);
      g.startRealMode(CODE);

      assertEquals(new VcpuExit.Mmio(0x100000, true, 1, 0xab), g.vcpu.run());
      assertEquals(new VcpuExit.Mmio(0x100010, true, 2, 0x1234), g.vcpu.run());
      assertEquals(new VcpuExit.Mmio(0x100020, false, 1, 0), g.vcpu.run());
      g.vcpu.completeMmioRead(0x5a);
      assertEquals(out(0x10, 1, (byte) 0x5a), g.vcpu.run());
      assertEquals(new VcpuExit.Hlt(), g.vcpu.run());
    }
  }

  @Test
  void protectedModeGuestUses32BitAddresses() {
    try (TestGuest g = TestGuest.create()) {
      g.load(CODE, GuestPrograms.PROTECTED_MODE_INCREMENT);
      g.ram.putInt((int) DATA, 0x1234_5677);
      g.startProtectedMode(CODE);

      assertEquals(new VcpuExit.Mmio(0x200000, true, 4, 0x1234_5678), g.vcpu.run());
      assertEquals(out(0x10, 4, (byte) 0x78, (byte) 0x56, (byte) 0x34, (byte) 0x12), g.vcpu.run());
      assertEquals(new VcpuExit.Hlt(), g.vcpu.run());
      assertEquals(0x1234_5678, g.ram.getInt((int) DATA + 4));
    }
  }

  @Test
  void longModeGuestRunsOnIdentityPageTables() {
    try (TestGuest g = TestGuest.create()) {
      g.load(CODE, GuestPrograms.LONG_MODE_INCREMENT);
      g.ram.putLong((int) DATA, 0x1122_3344_5566_7787L);
      g.startLongMode(CODE);

      assertEquals(out(0x10, 4, (byte) 0x88, (byte) 0x77, (byte) 0x66, (byte) 0x55), g.vcpu.run());
      assertEquals(new VcpuExit.Hlt(), g.vcpu.run());
      assertEquals(0x1122_3344_5566_7788L, g.ram.getLong((int) DATA + 8));
      assertTrue((g.vcpu.specialRegisters().efer() & SpecialRegisters.EFER_LMA) != 0, "long mode active");
    }
  }

  @Test
  void fetchingCodeFromAGpaWithoutMemoryIsAnEmulationFailure() {
    try (TestGuest g = TestGuest.create()) {
      g.startRealMode(0);
      SpecialRegisters s = g.vcpu.specialRegisters();
      g.vcpu.setSpecialRegisters(s.withCodeSegment(Segment.realMode(0x2000, true))); // CS base 0x20000: past the 64 KiB slot

      VcpuExit exit = g.vcpu.run();
      assertInstanceOf(VcpuExit.InternalError.class, exit);
      assertEquals(VcpuExit.InternalError.SUBERROR_EMULATION, ((VcpuExit.InternalError) exit).suberror());
    }
  }

  @Test
  void aTripleFaultIsAShutdownExit() {
    try (TestGuest g = TestGuest.create()) {
      g.load(CODE, GuestPrograms.UD2);
      g.startProtectedMode(CODE);
      g.vcpu.setSpecialRegisters(g.vcpu.specialRegisters().withIdt(new DescriptorTable(0, 0))); // #UD → #GP → #DF → shutdown

      assertEquals(new VcpuExit.Shutdown(), g.vcpu.run());
    }
  }

  @Test
  void registersRoundTrip() {
    try (TestGuest g = TestGuest.create()) {
      Registers.Builder b = Registers.builder();
      b.rax(0x0123_4567_89ab_cdefL).rbx(-1L).rcx(3).rdx(4).rsi(5).rdi(6).rsp(0x7000).rbp(8);
      b.r8(9).r9(10).r10(11).r11(12).r12(13).r13(14).r14(0x8000_0000_0000_0000L).r15(16);
      Registers set = b.rip(0x1000).rflags(Registers.RFLAGS_FIXED | 0x1 | 0x40).build();
      g.vcpu.setRegisters(set);
      assertEquals(set, g.vcpu.registers());
    }
  }

  @Test
  void specialRegistersRoundTripAChangedField() {
    try (TestGuest g = TestGuest.create()) {
      SpecialRegisters reset = g.vcpu.specialRegisters();
      assertEquals(0xf000, reset.cs().selector(), "architectural reset state");
      assertEquals(0xffff_0000L, reset.cs().base());

      SpecialRegisters changed = reset
          .withGdt(new DescriptorTable(0x5000, 0x27))
          .withDs(Segment.realMode(0x0200, false))
          .withCr3(0x3000);
      g.vcpu.setSpecialRegisters(changed);
      SpecialRegisters read = g.vcpu.specialRegisters();
      assertEquals(new DescriptorTable(0x5000, 0x27), read.gdt());
      assertEquals(Segment.realMode(0x0200, false), read.ds());
      assertEquals(0x3000, read.cr3());
      assertEquals(changed, read);
    }
  }

  @Test
  void closeIsIdempotentAndAClosedVcpuRefusesCalls() {
    try (TestGuest g = TestGuest.create()) {
      KvmVcpu v = g.vcpu;
      assertTrue(v.isOpen());
      v.close();
      v.close();
      assertFalse(v.isOpen());
      assertEquals(Errno.EBADF, assertThrows(GmemException.class, v::run).errno());
      assertEquals(Errno.EBADF, assertThrows(GmemException.class, v::registers).errno());
    }
  }

  @Test
  void aVcpuIdCannotBeCreatedTwiceEvenAfterClose() {
    try (TestGuest g = TestGuest.create()) {
      g.vcpu.close();
      GmemException e = assertThrows(GmemException.class, () -> KvmVcpu.create(g.kvm, g.device, g.vm, 0));
      assertEquals(Errno.EEXIST, e.errno());
      try (KvmVcpu second = KvmVcpu.create(g.kvm, g.device, g.vm, 1)) {
        assertEquals(1, second.id());
      }
    }
  }

  @Test
  @Timeout(value = 60, unit = TimeUnit.SECONDS) // hang guard only: the guest spins until the host sets its flag
  void aSecondThreadIsRejectedAndCloseWaitsForTheRunningCall() throws Exception {
    try (TestGuest g = TestGuest.create()) {
      g.load(CODE, GuestPrograms.REAL_MODE_WAIT_FOR_FLAG);
      g.startRealMode(CODE);
      CompletableFuture<VcpuExit> running = CompletableFuture.supplyAsync(g.vcpu::run);

      // The guest's first store proves the other thread is inside KVM_RUN. Polling the vCPU
      // instead would race: the runner's own run() could find the vCPU busy with the poll.
      while (g.ram.get((int) DATA + 1) == 0) {
        assertFalse(running.isDone(), () -> "run() ended before the guest started: " + running.handle((exit, error) -> exit != null ? exit : error).join());
        Thread.onSpinWait();
      }
      assertThrows(IllegalStateException.class, g.vcpu::registers, "a second thread is refused while the first runs");
      g.vcpu.close(); // deferred: kvm_run must stay mapped until run() has decoded the exit
      assertFalse(g.vcpu.isOpen());
      g.ram.put((int) DATA, (byte) 1);
      assertEquals(new VcpuExit.Hlt(), running.get());
      assertEquals(Errno.EBADF, assertThrows(GmemException.class, g.vcpu::registers).errno());
    }
  }
}
