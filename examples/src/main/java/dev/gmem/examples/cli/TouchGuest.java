package dev.gmem.examples.cli;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Registers;
import dev.gmem.api.Segment;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A 32-bit flat protected-mode guest (no paging) for {@code gmem snapshot}/{@code restore}: its
 * first pass fills {@code [BASE, BASE+size)} with a dword sequence and reports on port 0x10; after
 * the restore it continues with its second pass, which folds every dword into a checksum
 * ({@code rol 5; xor}) and reports it on port 0x11 — computed by the guest from the memory it sees.
 */
final class TouchGuest {
  static final long CODE = 0x1000;
  static final long BASE = 0x10_0000;
  static final int FILL_PORT = 0x10;
  static final int SUM_PORT = 0x11;
  static final int SEED = 0x1234_5678;
  static final int STEP = 0x9E37_79B1;

  private TouchGuest() {}

  static byte[] program(long size) {
    int count = (int) (size / 4);
    ByteBuffer b = ByteBuffer.allocate(64).order(ByteOrder.LITTLE_ENDIAN);
    b.put((byte) 0xBF).putInt((int) BASE); //        mov edi, BASE
    b.put((byte) 0xB9).putInt(count); //             mov ecx, count
    b.put((byte) 0xB8).putInt(SEED); //              mov eax, SEED
    b.put((byte) 0x89).put((byte) 0x07); //    fill: mov [edi], eax
    b.put((byte) 0x05).putInt(STEP); //              add eax, STEP
    b.put((byte) 0x83).put((byte) 0xC7).put((byte) 0x04); // add edi, 4
    b.put((byte) 0x49); //                           dec ecx
    b.put((byte) 0x75).put((byte) 0xF3); //          jnz fill
    b.put((byte) 0xE6).put((byte) FILL_PORT); //     out 0x10, al
    b.put((byte) 0xF4); //                           hlt
    b.put((byte) 0xBE).putInt((int) BASE); //        mov esi, BASE
    b.put((byte) 0xB9).putInt(count); //             mov ecx, count
    b.put((byte) 0x31).put((byte) 0xD2); //          xor edx, edx
    b.put((byte) 0x8B).put((byte) 0x06); //     sum: mov eax, [esi]
    b.put((byte) 0xC1).put((byte) 0xC2).put((byte) 0x05); // rol edx, 5
    b.put((byte) 0x31).put((byte) 0xC2); //          xor edx, eax
    b.put((byte) 0x83).put((byte) 0xC6).put((byte) 0x04); // add esi, 4
    b.put((byte) 0x49); //                           dec ecx
    b.put((byte) 0x75).put((byte) 0xF3); //          jnz sum
    b.put((byte) 0x89).put((byte) 0xD0); //          mov eax, edx
    b.put((byte) 0xE7).put((byte) SUM_PORT); //      out 0x11, eax
    b.put((byte) 0xF4); //                           hlt
    byte[] out = new byte[b.position()];
    b.flip().get(out);
    return out;
  }

  /** The checksum the second pass computes over {@code size} bytes filled by the first. */
  static int expectedSum(long size) {
    int v = SEED;
    int sum = 0;
    for (long i = 0; i < size / 4; i++) {
      sum = Integer.rotateLeft(sum, 5) ^ v;
      v += STEP;
    }
    return sum;
  }

  static void start(Vcpu cpu) {
    var s = cpu.specialRegisters();
    cpu.setSpecialRegisters(s.withCr0(s.cr0() | dev.gmem.api.SpecialRegisters.CR0_PE)
        .withCodeSegment(Segment.flat32Code(0x08)).withDataSegments(Segment.flat32Data(0x10)));
    cpu.setRegisters(Registers.initial().withRip(CODE));
  }

  /** A DEFAULT VM with one {@code MMAP|INIT_SHARED} file bound at GPA 0, big enough for {@code size} bytes at {@link #BASE}, and the program loaded. */
  static Vm vm(GmemRuntime rt, long size) {
    Vm vm = rt.createVm(VmType.DEFAULT);
    GuestMemFile f = vm.createGuestMemFile(BASE + size, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
    vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, BASE + size, f, 0);
    byte[] code = program(size);
    vm.guestMemory().write(CODE, code, 0, code.length);
    return vm;
  }

  /** Starts {@code cpu} and runs the first pass: null once it filled its memory and halted, else the exit that came instead. */
  static VcpuExit fill(Vcpu cpu) {
    start(cpu);
    VcpuExit first = cpu.run();
    if (!(first instanceof VcpuExit.Io io) || io.port() != FILL_PORT) {
      return first;
    }
    VcpuExit halt = cpu.run();
    return halt instanceof VcpuExit.Hlt ? null : halt;
  }
}
