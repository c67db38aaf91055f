package dev.gmem.core.vcpu;

/**
 * Hand-assembled guest programs for the vCPU tests, one instruction per line with its bytes. Data
 * lives at {@link #DATA} (0x2000), code at {@link #CODE} (0x1000); page tables for long mode at
 * 0x3000..0x5fff. Nothing here is mapped above 64 KiB, so 0x100000 and up is MMIO.
 */
final class GuestPrograms {
  static final long CODE = 0x1000;
  static final long DATA = 0x2000;
  static final long PML4 = 0x3000;

  private GuestPrograms() {}

  /** 16-bit, DS base 0: {@code [0x2001] = [0x2000] + 1}, then reports the sum on port 0x10. */
  static final byte[] REAL_MODE_INCREMENT = bytes(
      0xA0, 0x00, 0x20, //       mov al, [0x2000]
      0x04, 0x01, //             add al, 1
      0xA2, 0x01, 0x20, //       mov [0x2001], al
      0xE6, 0x10, //             out 0x10, al
      0xF4); //                  hlt

  /** 16-bit: echoes a byte from port 0x20 to 0x21 and a word from 0x22 to 0x23. */
  static final byte[] REAL_MODE_IN_ECHO = bytes(
      0xE4, 0x20, //             in al, 0x20
      0xE6, 0x21, //             out 0x21, al
      0xE5, 0x22, //             in ax, 0x22
      0xE7, 0x23, //             out 0x23, ax
      0xF4); //                  hlt

  /** 16-bit, DS base 0: string output of the 4 bytes at 0x2000 to port 0x30. */
  static final byte[] REAL_MODE_REP_OUTSB = bytes(
      0xBE, 0x00, 0x20, //       mov si, 0x2000
      0xB9, 0x04, 0x00, //       mov cx, 4
      0xBA, 0x30, 0x00, //       mov dx, 0x30
      0xFC, //                   cld
      0xF3, 0x6E, //             rep outsb
      0xF4); //                  hlt

  /**
   * 16-bit: with ES = 0xffff (base 0xffff0) touches 0x100000.. which no memslot covers: a byte
   * store, a word store, a byte load that is echoed on port 0x10.
   */
  static final byte[] REAL_MODE_MMIO = bytes(
      0xB8, 0xFF, 0xFF, //                         mov ax, 0xffff
      0x8E, 0xC0, //                               mov es, ax
      0x26, 0xC6, 0x06, 0x10, 0x00, 0xAB, //       mov byte [es:0x0010], 0xab    ; gpa 0x100000
      0x26, 0xC7, 0x06, 0x20, 0x00, 0x34, 0x12, // mov word [es:0x0020], 0x1234  ; gpa 0x100010
      0x26, 0xA0, 0x30, 0x00, //                   mov al, [es:0x0030]           ; gpa 0x100020
      0xE6, 0x10, //                               out 0x10, al
      0xF4); //                                    hlt

  /** 16-bit: sets the byte at 0x2001 to say it runs, spins while the byte at 0x2000 is zero, then halts. */
  static final byte[] REAL_MODE_WAIT_FOR_FLAG = bytes(
      0xC6, 0x06, 0x01, 0x20, 0x01, //        mov byte [0x2001], 1
      0x80, 0x3E, 0x00, 0x20, 0x00, //  loop: cmp byte [0x2000], 0
      0x74, 0xF9, //                          je loop            ; -7: back to cmp
      0xF4); //                               hlt

  /**
   * 32-bit flat protected mode: {@code [0x2004] = [0x2000] + 1}, the sum also stored at 0x200000
   * (2 MiB, reachable only with 32-bit addressing, and MMIO here) and sent to port 0x10.
   */
  static final byte[] PROTECTED_MODE_INCREMENT = bytes(
      0xA1, 0x00, 0x20, 0x00, 0x00, //  mov eax, [0x2000]
      0x05, 0x01, 0x00, 0x00, 0x00, //  add eax, 1
      0xA3, 0x04, 0x20, 0x00, 0x00, //  mov [0x2004], eax
      0xA3, 0x00, 0x00, 0x20, 0x00, //  mov [0x200000], eax
      0xE7, 0x10, //                    out 0x10, eax
      0xF4); //                         hlt

  /** 64-bit long mode, identity-mapped: {@code [0x2008] = [0x2000] + 1} (64-bit), low half sent to port 0x10. */
  static final byte[] LONG_MODE_INCREMENT = bytes(
      0x48, 0x8B, 0x04, 0x25, 0x00, 0x20, 0x00, 0x00, // mov rax, [0x2000]
      0x48, 0x83, 0xC0, 0x01, //                         add rax, 1
      0x48, 0x89, 0x04, 0x25, 0x08, 0x20, 0x00, 0x00, // mov [0x2008], rax
      0xE7, 0x10, //                                     out 0x10, eax
      0xF4); //                                          hlt

  /** Raises #UD; with an empty IDT that escalates to a triple fault. */
  static final byte[] UD2 = bytes(
      0x0F, 0x0B); //            ud2

  /**
   * Identity map of the first 2 MiB for long mode: PML4 at 0x3000 → PDPT at 0x4000 → PD at 0x5000
   * whose entry 0 is a 2 MiB page at 0. Returns (gpa, entry) pairs.
   */
  static long[][] identityPageTables() {
    long presentWritable = 0x3;
    long largePage = 0x80;
    return new long[][] {
      {PML4, 0x4000 | presentWritable},
      {0x4000, 0x5000 | presentWritable},
      {0x5000, largePage | presentWritable},
    };
  }

  private static byte[] bytes(int... values) {
    byte[] b = new byte[values.length];
    for (int i = 0; i < values.length; i++) {
      b[i] = (byte) values[i];
    }
    return b;
  }
}
