package dev.gmem.arch.tdx.module;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
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
 * 256 bytes when {@code KVM_TDX_MEASURE_MEMORY_REGION} is set).
 *
 * <p><b>Threads.</b> A page's blocks (its PAGE.ADD block and, measured, its 16 MR.EXTENDs) are
 * laid out by the populating thread, from the source as it is during the call, into one buffer
 * and fed to the digest as one multi-block update: inline, or — {@link #pipeline} on, with a
 * {@link MeasurementEngine} and a spare CPU for it ({@link CpuPressure}) — by the engine's thread
 * while the populating thread goes on with the next page (back to inline for the rest of the call
 * once the engine stalled, i.e. lost its CPU mid-job). Every other use of the digest ({@link #finish}, {@link #copy}, the chunk-wise
 * slow path) first waits for the engine ({@link #drain}), and the TD drains at the end of every
 * populate, so the blocks reach the digest in the order they were laid out and nobody sees a
 * digest with updates in flight. Not thread-safe otherwise: the owner serialises.
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
  /** A measured page's blocks: its PAGE.ADD block, then its 16 MR.EXTENDs. */
  static final int PAGE_JOB_BYTES = BLOCK + CHUNKS * EXTEND_BYTES;
  /** {@code sha384_128B_block_t.gpa}. */
  private static final int GPA_AT = 16;

  private static final byte[] PAGE_ADD = "MEM.PAGE.ADD".getBytes(StandardCharsets.US_ASCII);
  private static final byte[] MR_EXTEND = "MR.EXTEND".getBytes(StandardCharsets.US_ASCII);
  private static final VarHandle LE_LONG = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);

  private MessageDigest sha = newSha384();
  private byte[] finalized;
  /** The engine pages may be hashed on, or null: always inline. */
  private final MeasurementEngine engine;
  /** Whether {@link #addPage} hands pages to {@link #engine} (a multi-page populate). */
  private boolean pipelined;
  /** The engine's sequence number of this MRTD's last job; 0: none in flight. */
  private long pending;
  /** The inline path's page buffer, laid out by {@link #template}: one digest update per page. */
  private final byte[] pageBuffer = new byte[PAGE_JOB_BYTES];

  Mrtd(MeasurementEngine engine) {
    this.engine = engine;
    template(pageBuffer);
  }

  /** The constant parts of a page's blocks, the API names; the rest is zero or written per page. */
  static void template(byte[] b) {
    System.arraycopy(PAGE_ADD, 0, b, 0, PAGE_ADD.length);
    for (int i = 0; i < CHUNKS; i++) {
      System.arraycopy(MR_EXTEND, 0, b, BLOCK + i * EXTEND_BYTES, MR_EXTEND.length);
    }
  }

  private static MessageDigest newSha384() {
    try {
      return MessageDigest.getInstance("SHA-384");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("the JDK has no SHA-384", e);
    }
  }

  /** Whether the following pages go to the engine (when there is one, and a CPU for it) rather than inline. */
  void pipeline(boolean on) {
    pipelined = on && engine != null && engine.worthIt();
    if (pipelined) {
      engine.wakeUp();
    }
  }

  /**
   * {@code TDH.MEM.PAGE.ADD}'s extension for the page at {@code gpa} and, if {@code measure}, the
   * page's 16 {@code TDH.MR.EXTEND}s over its contents as the TD sees them: {@code contents}'
   * 4096 bytes from index {@code at}, read before this returns (the caller may reuse them).
   */
  void addPage(long gpa, ByteBuffer contents, int at, boolean measure) {
    if (!pipelined) {
      sha.update(pageBuffer, 0, layout(pageBuffer, gpa, contents, at, measure));
      return;
    }
    long stalls = engine.stalls();
    byte[] b = engine.claim(sha);
    int length = 0;
    try {
      length = layout(b, gpa, contents, at, measure);
    } finally {
      pending = engine.publish(length); // an empty job if the layout failed: nothing is hashed
    }
    if (engine.stalls() != stalls) {
      // The engine lost its CPU (a loaded host): the rest of this populate is hashed inline.
      drain();
      pipelined = false;
    }
  }

  /** Lays out the page's blocks in {@code b} (a {@link #template}); returns their length. */
  private static int layout(byte[] b, long gpa, ByteBuffer contents, int at, boolean measure) {
    LE_LONG.set(b, GPA_AT, gpa);
    if (!measure) {
      return BLOCK;
    }
    for (int i = 0; i < CHUNKS; i++) {
      int header = BLOCK + i * EXTEND_BYTES;
      LE_LONG.set(b, header + GPA_AT, gpa + (long) i * CHUNK);
      contents.get(at + i * CHUNK, b, header + BLOCK, CHUNK);
    }
    return PAGE_JOB_BYTES;
  }

  /** {@code TDH.MEM.PAGE.ADD}'s extension alone (the chunk-wise slow path). */
  void pageAdd(long gpa) {
    drain();
    byte[] block = new byte[BLOCK];
    System.arraycopy(PAGE_ADD, 0, block, 0, PAGE_ADD.length);
    LE_LONG.set(block, GPA_AT, gpa);
    sha.update(block);
  }

  /** One {@code TDH.MR.EXTEND}: the chunk at {@code gpa}, whose bytes are {@code page}'s from index {@code offset}. */
  void extendChunk(long gpa, ByteBuffer page, int offset) {
    drain();
    byte[] block = new byte[EXTEND_BYTES];
    System.arraycopy(MR_EXTEND, 0, block, 0, MR_EXTEND.length);
    LE_LONG.set(block, GPA_AT, gpa);
    page.get(offset, block, BLOCK, CHUNK);
    sha.update(block);
  }

  /** Returns once every page handed to the engine is in the digest. */
  void drain() {
    if (pending != 0) {
      engine.awaitDone(pending);
      pending = 0;
    }
  }

  /** {@code TDH.MR.FINALIZE}: MRTD is fixed from now on. */
  void finish() {
    drain();
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
  Mrtd copy(MeasurementEngine engine) {
    drain();
    Mrtd m = new Mrtd(engine);
    try {
      m.sha = sha == null ? null : (MessageDigest) sha.clone();
    } catch (CloneNotSupportedException e) {
      throw new IllegalStateException(e);
    }
    m.finalized = finalized == null ? null : finalized.clone();
    return m;
  }
}
