package dev.gmem.userfault;

import dev.gmem.api.Registers;
import dev.gmem.api.Segment;
import dev.gmem.api.Vcpu;

/** A tiny real-mode guest for the real-vCPU tests. */
final class RealGuest {
  static final long CODE = 0x1000;
  static final long DATA = 0x2000;

  /** 16-bit, DS base 0: {@code [0x2001] = [0x2000] + 1}, reported on port 0x10, then hlt. */
  static final byte[] INCREMENT = bytes(
      0xA0, 0x00, 0x20, //       mov al, [0x2000]
      0x04, 0x01, //             add al, 1
      0xA2, 0x01, 0x20, //       mov [0x2001], al
      0xE6, 0x10, //             out 0x10, al
      0xF4); //                  hlt

  private RealGuest() {}

  static void startRealMode(Vcpu cpu, long rip) {
    cpu.setSpecialRegisters(cpu.specialRegisters().withCodeSegment(Segment.realMode(0, true)).withDataSegments(Segment.realMode(0, false)));
    cpu.setRegisters(Registers.initial().withRip(rip));
  }

  static byte[] bytes(int... values) {
    byte[] b = new byte[values.length];
    for (int i = 0; i < values.length; i++) {
      b[i] = (byte) values[i];
    }
    return b;
  }
}
