package dev.gmem.arch.tdx.module;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

/**
 * MRTD, the TD's build-time measurement register, extended as the TDX module extends it: an
 * incremental SHA-384 fed only whole 128-byte blocks ({@code sha384_update_128B} on
 * {@code tdcs.measurement_fields.td_sha_ctx}) and finished by {@code TDH.MR.FINALIZE}.
 *
 * <ul>
 *   <li>{@code TDH.MEM.PAGE.ADD} extends one block: the ASCII name {@code "MEM.PAGE.ADD"} padded
 *       with zeros to 16 bytes, the page's GPA as a little-endian u64 at offset 16, zeros to 128
 *       ({@code sha384_128B_block_t}'s {@code api_name}, {@code gpa}, {@code reserved}).
 *   <li>{@code TDH.MR.EXTEND} extends three: the same header with {@code "MR.EXTEND"} and the
 *       chunk's GPA, then the chunk's 256 bytes as the TD sees them. KVM measures a page as 16
 *       such chunks ({@code TDX_EXTENDMR_CHUNKSIZE}, {@code tdx_gmem_post_populate}).
 * </ul>
 *
 * Sources: intel/tdx-module {@code src/vmm_dispatcher/api_calls/tdh_mem_page_add.c} and
 * {@code tdh_mr_extend.c} (the blocks built and fed to {@code sha384_update_128B}), and the
 * {@code sha384_128B_block_t} layout in the module's {@code crypto/sha384.h}; Linux
 * {@code arch/x86/kvm/vmx/tdx.c} ({@code tdx_gmem_post_populate}: PAGE.ADD, then MR.EXTEND per
 * 256 bytes when {@code KVM_TDX_MEASURE_MEMORY_REGION} is set). Not thread-safe: the owner
 * serialises.
 */
final class Mrtd {
  /** SHA-384's block, the unit the TDX module extends by. */
  static final int BLOCK = 128;
  /** {@code TDX_EXTENDMR_CHUNKSIZE}. */
  static final int CHUNK = 256;
  private static final int PAGE = 4096;
  private static final int CHUNKS = PAGE / CHUNK;
  /** One header block per chunk plus the chunk. */
  private static final int EXTEND_BYTES = BLOCK + CHUNK;

  private static final byte[] PAGE_ADD = "MEM.PAGE.ADD".getBytes(StandardCharsets.US_ASCII);
  private static final byte[] MR_EXTEND = "MR.EXTEND".getBytes(StandardCharsets.US_ASCII);

  private MessageDigest sha = newSha384();
  private byte[] finalized;
  /** The bytes of one measured page's 16 MR.EXTENDs, reused: one digest update per page. */
  private final byte[] extendBuffer = new byte[CHUNKS * EXTEND_BYTES];
  private final ByteBuffer extendView = ByteBuffer.wrap(extendBuffer).order(ByteOrder.LITTLE_ENDIAN);
  private final byte[] header = new byte[BLOCK];
  private final ByteBuffer headerView = ByteBuffer.wrap(header).order(ByteOrder.LITTLE_ENDIAN);

  Mrtd() {
    for (int i = 0; i < CHUNKS; i++) {
      System.arraycopy(MR_EXTEND, 0, extendBuffer, i * EXTEND_BYTES, MR_EXTEND.length);
    }
    System.arraycopy(PAGE_ADD, 0, header, 0, PAGE_ADD.length);
  }

  private static MessageDigest newSha384() {
    try {
      return MessageDigest.getInstance("SHA-384");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("the JDK has no SHA-384", e);
    }
  }

  /** {@code TDH.MEM.PAGE.ADD}'s extension for the page at {@code gpa}. */
  void pageAdd(long gpa) {
    headerView.putLong(16, gpa);
    sha.update(header);
  }

  /**
   * The 16 {@code TDH.MR.EXTEND}s of the page at {@code gpa} whose contents (as the TD sees them)
   * are {@code page}'s 4096 bytes from index {@code offset}: the headers and chunks laid out in one
   * reused buffer, so that the digest takes all 48 blocks in one multi-block update.
   */
  void extendPage(long gpa, ByteBuffer page, int offset) {
    for (int i = 0; i < CHUNKS; i++) {
      int at = i * EXTEND_BYTES;
      extendView.putLong(at + 16, gpa + (long) i * CHUNK);
      page.get(offset + i * CHUNK, extendBuffer, at + BLOCK, CHUNK);
    }
    sha.update(extendBuffer);
  }

  /** One {@code TDH.MR.EXTEND}: the chunk at {@code gpa}, whose bytes are {@code page}'s from index {@code offset}. */
  void extendChunk(long gpa, ByteBuffer page, int offset) {
    byte[] block = new byte[EXTEND_BYTES];
    System.arraycopy(MR_EXTEND, 0, block, 0, MR_EXTEND.length);
    ByteBuffer.wrap(block).order(ByteOrder.LITTLE_ENDIAN).putLong(16, gpa);
    page.get(offset, block, BLOCK, CHUNK);
    sha.update(block);
  }

  /** {@code TDH.MR.FINALIZE}: MRTD is fixed from now on. */
  void finish() {
    finalized = sha.digest();
    sha = null;
  }

  boolean finished() {
    return finalized != null;
  }

  /** The final MRTD; null before {@link #finish()}. */
  byte[] value() {
    return finalized == null ? null : finalized.clone();
  }

  /** A copy of the state so far, for a context move (the destination continues the same measurement). */
  Mrtd copy() {
    Mrtd m = new Mrtd();
    try {
      m.sha = sha == null ? null : (MessageDigest) sha.clone();
    } catch (CloneNotSupportedException e) {
      throw new IllegalStateException(e);
    }
    m.finalized = finalized == null ? null : finalized.clone();
    return m;
  }
}
