package dev.gmem.migrate;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Registers;
import dev.gmem.api.Segment;
import dev.gmem.api.SpecialRegisters;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.security.MessageDigest;

/**
 * A real 32-bit guest for migration tests: its first pass fills {@code [BASE, BASE+size)} with a
 * dword sequence and reports on port 0x10, then halts (the switch-over point); its second pass, on
 * the destination, folds every dword into a checksum and reports it on port 0x11 — computed by the
 * guest from the memory it sees there, faulting in what is missing.
 */
final class Guest {
  static final long PAGE = 4096;
  static final long CODE = 0x1000;
  static final long BASE = 0x10_0000;
  static final int FILL_PORT = 0x10;
  static final int SUM_PORT = 0x11;
  static final int SEED = 0x1234_5678;
  static final int STEP = 0x9E37_79B1;

  private Guest() {}

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

  static int expectedSum(long size) {
    int v = SEED;
    int sum = 0;
    for (long i = 0; i < size / 4; i++) {
      sum = Integer.rotateLeft(sum, 5) ^ v;
      v += STEP;
    }
    return sum;
  }

  /** A VM with one slot at GPA 0 covering code and {@code size} bytes of data, the program loaded. */
  static Vm vm(GmemRuntime rt, long size) {
    Vm vm = rt.createVm(VmType.DEFAULT);
    long bytes = BASE + size;
    GuestMemFile f = vm.createGuestMemFile(bytes, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
    vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, bytes, f, 0);
    byte[] p = program(size);
    vm.guestMemory().write(CODE, p, 0, p.length);
    return vm;
  }

  /** Runs the first pass on a real vCPU up to its halt: the guest is ready to migrate. */
  static void fill(Vcpu cpu) {
    var s = cpu.specialRegisters();
    cpu.setSpecialRegisters(s.withCr0(s.cr0() | SpecialRegisters.CR0_PE)
        .withCodeSegment(Segment.flat32Code(0x08)).withDataSegments(Segment.flat32Data(0x10)));
    cpu.setRegisters(Registers.initial().withRip(CODE));
    VcpuExit.Io io = (VcpuExit.Io) cpu.run();
    if (io.port() != FILL_PORT) {
      throw new IllegalStateException("unexpected exit " + io);
    }
    VcpuExit halt = cpu.run();
    if (!(halt instanceof VcpuExit.Hlt)) {
      throw new IllegalStateException("unexpected exit " + halt);
    }
  }

  /** SHA-256 of every page of {@code vm}'s slot 0, read through the GPA view. */
  static byte[] digest(Vm vm) throws Exception {
    MessageDigest md = MessageDigest.getInstance("SHA-256");
    Memslot m = vm.memslots().get(0);
    byte[] page = new byte[(int) PAGE];
    for (long gpa = m.gpa(); gpa < m.gpa() + m.size(); gpa += PAGE) {
      vm.guestMemory().read(gpa, page, 0, page.length);
      md.update(page);
    }
    return md.digest();
  }

  static String hex(byte[] b) {
    return java.util.HexFormat.of().formatHex(b);
  }
}
