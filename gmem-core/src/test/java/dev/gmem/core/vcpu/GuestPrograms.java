package dev.gmem.core.vcpu;

import dev.gmem.api.Segment;
import dev.gmem.api.SpecialRegisters;

/**
 * Hand-assembled guest programs for the vCPU tests, one instruction per line with its bytes. Data
 * lives at {@link #DATA} (0x2000), code at {@link #CODE} (0x1000); page tables for long mode at
 * 0x3000..0x6fff. Nothing here is mapped above 64 KiB, so 0x100000 and up is MMIO (except
 * {@link #HIGH_GPA} for the guest_memfd guest test, which binds a page there).
 */
public final class GuestPrograms {
  public static final long CODE = 0x1000;
  public static final long DATA = 0x2000;
  public static final long PML4 = 0x3000;
  /** GPA 4 GiB, where {@code guest_memfd_test}'s guest test binds its page. */
  public static final long HIGH_GPA = 1L << 32;
  /** Port {@link #LONG_MODE_CHECK_AA_FILL_FF} reports a mismatch on. */
  public static final int MISMATCH_PORT = 0x11;

  private GuestPrograms() {}

  /** 16-bit, DS base 0: {@code [0x2001] = [0x2000] + 1}, then reports the sum on port 0x10. */
  static final byte[] REAL_MODE_INCREMENT = bytes(
      0xA0, 0x00, 0x20, //       mov al, [0x2000]
      0x04, 0x01, //             add al, 1
      0xA2, 0x01, 0x20, //       mov [0x2001], al
      0xE6, 0x10, //             out 0x10, al
      0xF4); //                  hlt

  /** Port {@link #REAL_MODE_HOP} reports the byte it found at 0x2001 on, after each hop. */
  public static final int HOP_PORT = 0x11;

  /**
   * 16-bit, DS base 0, for intra-host migration: {@code [0x2001] = [0x2000] + 1}, reported on port
   * 0x10, then {@code hlt} — the last exit on one VM. Each later run (on the next VM, with the
   * registers the last one had) reports the byte at 0x2001 on port {@link #HOP_PORT}, increments it
   * and halts again.
   */
  public static final byte[] REAL_MODE_HOP = bytes(
      0xA0, 0x00, 0x20, //       mov al, [0x2000]
      0xFE, 0xC0, //             inc al
      0xA2, 0x01, 0x20, //       mov [0x2001], al
      0xE6, 0x10, //             out 0x10, al
      0xF4, //             hop:  hlt
      0xA0, 0x01, 0x20, //       mov al, [0x2001]
      0xE6, 0x11, //             out 0x11, al
      0xFE, 0xC0, //             inc al
      0xA2, 0x01, 0x20, //       mov [0x2001], al
      0xEB, 0xF3); //            jmp hop

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

  /** 16-bit: reports the byte at GPA 0x10000 (DS = 0x1000) on port 0x10. */
  public static final byte[] REAL_MODE_REPORT_BYTE_AT_64K = bytes(
      0xB8, 0x00, 0x10, //       mov ax, 0x1000
      0x8E, 0xD8, //             mov ds, ax
      0xA0, 0x00, 0x00, //       mov al, [0x0000]          ; gpa 0x10000
      0xE6, 0x10, //             out 0x10, al
      0xF4); //                  hlt

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

  /**
   * 64-bit long mode, {@code guest_memfd_test}'s guest_code: checks that every byte of the page at
   * {@link #HIGH_GPA} is 0xaa, then fills it with 0xff and halts. On the first mismatch it sends
   * the count of bytes not yet checked (0x1000 - offset) on port {@link #MISMATCH_PORT} and halts.
   */
  public static final byte[] LONG_MODE_CHECK_AA_FILL_FF = bytes(
      0x48, 0xBF, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, //        mov rdi, 0x100000000
      0xB9, 0x00, 0x10, 0x00, 0x00, //                                     mov ecx, 0x1000
      0x80, 0x3F, 0xAA, //                                           loop: cmp byte [rdi], 0xaa
      0x75, 0x1C, //                                                       jne fail          ; +28
      0x48, 0xFF, 0xC7, //                                                 inc rdi
      0xFF, 0xC9, //                                                       dec ecx
      0x75, 0xF4, //                                                       jnz loop          ; -12
      0x48, 0xBF, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, //        mov rdi, 0x100000000
      0xB9, 0x00, 0x10, 0x00, 0x00, //                                     mov ecx, 0x1000
      0xB0, 0xFF, //                                                       mov al, 0xff
      0xFC, //                                                             cld
      0xF3, 0xAA, //                                                       rep stosb
      0xF4, //                                                             hlt
      0x89, 0xC8, //                                                 fail: mov eax, ecx
      0xE7, MISMATCH_PORT, //                                              out 0x11, eax
      0xF4); //                                                            hlt

  /** GPA the {@link #REAL_MODE_MAP_GPA_RANGE} guest asks to convert. */
  public static final long MAP_GPA = 0x3000;

  /**
   * 16-bit: {@code KVM_HC_MAP_GPA_RANGE} for 2 pages at {@link #MAP_GPA}, encrypted, by
   * {@code VMCALL} (KVM rewrites it to VMMCALL on AMD), then reports the return value (eax) on
   * port 0x10 and halts.
   */
  public static final byte[] REAL_MODE_MAP_GPA_RANGE = bytes(
      0x66, 0xB8, 0x0C, 0x00, 0x00, 0x00, //  mov eax, 12           ; KVM_HC_MAP_GPA_RANGE
      0x66, 0xBB, 0x00, 0x30, 0x00, 0x00, //  mov ebx, 0x3000       ; gpa
      0x66, 0xB9, 0x02, 0x00, 0x00, 0x00, //  mov ecx, 2            ; npages
      0x66, 0xBA, 0x10, 0x00, 0x00, 0x00, //  mov edx, 0x10         ; KVM_MAP_GPA_RANGE_ENCRYPTED
      0x0F, 0x01, 0xC1, //                    vmcall
      0x66, 0xE7, 0x10, //                    out 0x10, eax
      0xF4); //                               hlt

  /** Offset of the VMCALL in {@link #REAL_MODE_MAP_GPA_RANGE}. */
  public static final int MAP_GPA_RANGE_VMCALL = 24;

  /** Raises #UD; with an empty IDT that escalates to a triple fault. */
  static final byte[] UD2 = bytes(
      0x0F, 0x0B); //            ud2

  /**
   * Identity map of the first 2 MiB for long mode: PML4 at 0x3000 → PDPT at 0x4000 → PD at 0x5000
   * whose entry 0 is a 2 MiB page at 0. Returns (gpa, entry) pairs.
   */
  public static long[][] identityPageTables() {
    long presentWritable = 0x3;
    long largePage = 0x80;
    return new long[][] {
      {PML4, 0x4000 | presentWritable},
      {0x4000, 0x5000 | presentWritable},
      {0x5000, largePage | presentWritable},
    };
  }

  /**
   * {@link #identityPageTables()} plus the 2 MiB at {@link #HIGH_GPA}: PDPT entry 4 (the fifth
   * GiB) → PD at 0x6000 whose entry 0 is a 2 MiB page at 4 GiB.
   */
  public static long[][] identityPageTablesWithHighGpa() {
    long presentWritable = 0x3;
    long largePage = 0x80;
    long[][] low = identityPageTables();
    long[][] all = java.util.Arrays.copyOf(low, low.length + 2);
    all[low.length] = new long[] {0x4000 + 4 * 8, 0x6000 | presentWritable};
    all[low.length + 1] = new long[] {0x6000, HIGH_GPA | largePage | presentWritable};
    return all;
  }

  /**
   * The special registers for 64-bit long mode over page tables at {@link #PML4}, derived from the
   * vCPU's current ones: paging, PAE, EFER.LME/LMA, caches on, flat 64-bit code and flat data.
   */
  public static SpecialRegisters longMode(SpecialRegisters s) {
    long cr0 = (s.cr0() & ~0x6000_0000L) | SpecialRegisters.CR0_PE | SpecialRegisters.CR0_PG; // caches on (clear CD, NW)
    return s.withCr3(PML4)
        .withCr4(s.cr4() | SpecialRegisters.CR4_PAE)
        .withEfer(s.efer() | SpecialRegisters.EFER_LME | SpecialRegisters.EFER_LMA)
        .withCr0(cr0)
        .withCodeSegment(Segment.flat64Code(0x08))
        .withDataSegments(Segment.flat32Data(0x10));
  }

  private static byte[] bytes(int... values) {
    byte[] b = new byte[values.length];
    for (int i = 0; i < values.length; i++) {
      b[i] = (byte) values[i];
    }
    return b;
  }
}
