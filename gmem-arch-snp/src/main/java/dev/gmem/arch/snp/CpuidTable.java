package dev.gmem.arch.snp;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The SNP CPUID page ({@code struct snp_cpuid_table}: a u32 count, 12 reserved bytes, then up to
 * 64 entries of 48 bytes — eax_in, ecx_in (u32), xcr0_in, xss_in (u64), eax, ebx, ecx, edx (u32),
 * a reserved u64) and the firmware's check of it.
 */
final class CpuidTable {
  static final int COUNT_MAX = 64;
  private static final int HEADER = 16;
  private static final int ENTRY = 48;
  private static final int OUT = 24;

  private CpuidTable() {}

  /**
   * The corrected page when the firmware rejects {@code page} (a count above 64 is cut to 64,
   * every entry gets the accepted values), or null when it passes.
   */
  static byte[] check(ByteBuffer page, CpuidPolicy policy) {
    ByteBuffer p = page.duplicate().order(ByteOrder.LITTLE_ENDIAN);
    int base = p.position();
    long count = Integer.toUnsignedLong(p.getInt(base));
    boolean rejected = count > COUNT_MAX;
    byte[] corrected = new byte[4096];
    p.duplicate().get(corrected);
    ByteBuffer c = ByteBuffer.wrap(corrected).order(ByteOrder.LITTLE_ENDIAN);
    int n = (int) Math.min(count, COUNT_MAX);
    c.putInt(0, n);
    for (int i = 0; i < n; i++) {
      int e = HEADER + i * ENTRY;
      int[] regs = {c.getInt(e + OUT), c.getInt(e + OUT + 4), c.getInt(e + OUT + 8), c.getInt(e + OUT + 12)};
      int[] ok = policy.accepted(c.getInt(e), c.getInt(e + 4), regs.clone());
      for (int r = 0; r < 4; r++) {
        if (ok[r] != regs[r]) {
          rejected = true;
          c.putInt(e + OUT + 4 * r, ok[r]);
        }
      }
    }
    return rejected ? corrected : null;
  }
}
