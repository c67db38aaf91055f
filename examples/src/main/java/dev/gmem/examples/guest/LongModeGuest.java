package dev.gmem.examples.guest;

import dev.gmem.api.DescriptorTable;
import dev.gmem.api.GuestMemory;
import dev.gmem.api.Registers;
import dev.gmem.api.Segment;
import dev.gmem.api.SpecialRegisters;
import dev.gmem.api.Vcpu;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A 64-bit long-mode guest that touches pages, for benchmarks and real-vCPU tests. The 32-bit
 * unpaged {@code TouchGuest} runs instruction by instruction on this project's host (kvm_pvm's
 * shadow paging emulates a guest without paging), a paged 64-bit guest runs natively.
 *
 * <p>Layout, all in the first 2 MiB: a GDT at {@link #GDT} (null, 64-bit code 0x08, data 0x10),
 * the code at {@link #CODE}, page tables from {@link #PML4} identity-mapping the first
 * {@link #MAPPED_GIB} GiB with 2 MiB pages. Touched memory starts at {@link #DATA_BASE}.
 *
 * <p>The program, one copy for every vCPU, each started on a range of its own: its first pass
 * stores {@code gpa ^ seed} into the first quadword of each of {@code pages} pages from
 * {@code start} and exits on port {@link #FILL_PORT}, then halts; run again, its second pass sums
 * those quadwords from the last page down — against the order a restore's background fill streams
 * them, so that the two meet in the middle — and exits on port {@link #SUM_PORT} with the low half
 * of the sum (the whole sum is in RDX), then halts.
 */
public final class LongModeGuest {
  public static final long GDT = 0x800;
  public static final long CODE = 0x1000;
  public static final long PML4 = 0x2000;
  static final long PDPT = 0x3000;
  static final long PD = 0x4000;
  /** GiB identity-mapped (one page directory each, at {@link #PD} onwards). */
  public static final int MAPPED_GIB = 4;
  public static final long DATA_BASE = 2L << 20;
  public static final long PAGE = 4096;
  public static final int FILL_PORT = 0x10;
  public static final int SUM_PORT = 0x11;

  private static final int SEL_CODE = 0x08;
  private static final int SEL_DATA = 0x10;

  private LongModeGuest() {}

  /**
   * The program (see the class comment): RDI = first page, RCX = pages, RSI = seed; R9 keeps the
   * count and R10 the last page for the second pass.
   */
  public static byte[] program() {
    return bytes(
        // fill: rdi = page, rcx = pages left
        0x48, 0x89, 0xF8, //                        fill: mov rax, rdi
        0x48, 0x31, 0xF0, //                              xor rax, rsi
        0x48, 0x89, 0x07, //                              mov [rdi], rax
        0x48, 0x81, 0xC7, 0x00, 0x10, 0x00, 0x00, //      add rdi, 0x1000
        0x48, 0xFF, 0xC9, //                              dec rcx
        0x75, 0xEB, //                                    jnz fill         ; -21
        0xE6, FILL_PORT, //                               out 0x10, al
        0xF4, //                                          hlt
        // sum
        0x4C, 0x89, 0xD7, //                              mov rdi, r10     ; the last page
        0x4C, 0x89, 0xC9, //                              mov rcx, r9
        0x31, 0xD2, //                                    xor edx, edx
        0x48, 0x8B, 0x07, //                         sum: mov rax, [rdi]
        0x48, 0x01, 0xC2, //                              add rdx, rax
        0x48, 0x81, 0xEF, 0x00, 0x10, 0x00, 0x00, //      sub rdi, 0x1000
        0x48, 0xFF, 0xC9, //                              dec rcx
        0x75, 0xEE, //                                    jnz sum          ; -18
        0x48, 0x89, 0xD0, //                              mov rax, rdx
        0xE7, SUM_PORT, //                                out 0x11, eax
        0xF4); //                                         hlt
  }

  /** Guest memory needed for {@code pages} touched pages. */
  public static long memorySize(long pages) {
    return DATA_BASE + pages * PAGE;
  }

  /**
   * Writes the GDT, the code and the page tables into guest memory (through the VMM's GPA view),
   * once per VM.
   */
  public static void load(GuestMemory memory) {
    byte[] low = lowMemory();
    memory.write(GDT, low, (int) GDT, low.length - (int) GDT);
  }

  /**
   * Guest-physical bytes {@code [0, PD + MAPPED_GIB pages)}: the GDT, the code and the page tables
   * at their addresses (zeros elsewhere), for a VMM that writes them itself (a raw baseline).
   */
  public static byte[] lowMemory() {
    ByteBuffer low = ByteBuffer.allocate((int) (PD + MAPPED_GIB * PAGE)).order(ByteOrder.LITTLE_ENDIAN);
    low.putLong((int) GDT + 8, 0x00AF_9A00_0000_FFFFL); // 64-bit code: P, DPL 0, S, type 0xA, L, G
    low.putLong((int) GDT + 16, 0x00CF_9200_0000_FFFFL); // data: P, DPL 0, S, type 2, D/B, G
    byte[] code = program();
    low.position((int) CODE);
    low.put(code);
    long presentWritable = 0x3;
    long large = 0x80;
    low.putLong((int) PML4, PDPT | presentWritable);
    for (int g = 0; g < MAPPED_GIB; g++) {
      long pd = PD + g * PAGE;
      low.putLong((int) (PDPT + 8L * g), pd | presentWritable);
      for (int e = 0; e < 512; e++) {
        low.putLong((int) (pd + 8L * e), ((long) g << 30) + ((long) e << 21) | large | presentWritable);
      }
    }
    return low.array();
  }

  /**
   * Puts {@code vcpu} in 64-bit long mode at the start of the program (KVM_SET_SREGS: CR0.PE|PG,
   * CR4.PAE, EFER.LME|LMA, CR3, GDT, flat segments) to touch {@code pages} pages from {@code start}.
   */
  public static void start(Vcpu vcpu, long start, long pages, long seed) {
    vcpu.setSpecialRegisters(longMode(vcpu.specialRegisters()));
    vcpu.setRegisters(registers(start, pages, seed));
  }

  /**
   * {@code s} (a vCPU's special registers after reset) in 64-bit long mode: CR0.PE|PG, CR4.PAE,
   * EFER.LME|LMA, CR3, GDT, flat segments.
   */
  public static SpecialRegisters longMode(SpecialRegisters s) {
    long cr0 = (s.cr0() & ~0x6000_0000L) | SpecialRegisters.CR0_PE | SpecialRegisters.CR0_PG; // caches on (clear CD, NW)
    return s.withGdt(new DescriptorTable(GDT, 3 * 8 - 1))
        .withCr3(PML4)
        .withCr4(s.cr4() | SpecialRegisters.CR4_PAE)
        .withEfer(s.efer() | SpecialRegisters.EFER_LME | SpecialRegisters.EFER_LMA)
        .withCr0(cr0)
        .withCodeSegment(Segment.flat64Code(SEL_CODE))
        .withDataSegments(Segment.flat32Data(SEL_DATA));
  }

  /** The registers at the program's start, to touch {@code pages} pages from {@code start}. */
  public static Registers registers(long start, long pages, long seed) {
    long last = start + (pages - 1) * PAGE;
    return new Registers(0, 0, pages, 0, seed, start, 0, 0, start, pages, last, 0, 0, 0, 0, 0, CODE, 0x2);
  }

  /** The quadword the first pass stores at the page at {@code gpa}. */
  public static long pattern(long gpa, long seed) {
    return gpa ^ seed;
  }

  /** The sum the second pass computes over {@code pages} pages from {@code start}. */
  public static long expectedSum(long start, long pages, long seed) {
    long sum = 0;
    for (long p = 0; p < pages; p++) {
      sum += pattern(start + p * PAGE, seed);
    }
    return sum;
  }

  private static byte[] bytes(int... values) {
    byte[] b = new byte[values.length];
    for (int i = 0; i < values.length; i++) {
      b[i] = (byte) values[i];
    }
    return b;
  }
}
