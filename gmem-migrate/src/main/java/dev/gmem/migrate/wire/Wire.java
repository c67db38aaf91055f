package dev.gmem.migrate.wire;

import dev.gmem.api.Api;

/**
 * Constants of the migration wire protocol, version {@value #VERSION} (docs/migration.md): every
 * connection opens with a hello ({@link #MAGIC}, version, channel kind, session id); every message
 * after it starts with a one-byte type. Integers are big-endian.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public final class Wire {
  private Wire() {}

  /** "GMMG". */
  public static final int MAGIC = 0x474d4d47;
  public static final short VERSION = 3;
  public static final int PAGE = 4096;

  /** Hello bytes: magic (4), version (2), kind (1), session (8). */
  public static final int HELLO_BYTES = 15;

  // ---- channel kinds (hello) -------------------------------------------------------------------
  /** The first main connection of a migration: a {@link #HANDSHAKE} follows. */
  public static final byte KIND_MAIN = 1;
  /** The demand channel of session {@code id}. */
  public static final byte KIND_DEMAND = 2;
  /** A main connection that resumes session {@code id} after a broken link (postcopy recovery). */
  public static final byte KIND_RESUME = 3;

  // ---- messages --------------------------------------------------------------------------------
  /** source → destination, main: length (4) and the encoded {@link Handshake}. */
  public static final byte HANDSHAKE = 'H';
  /** destination → source, main: accepted; session id (8). The destination's VM may run from now on. */
  public static final byte ACCEPT = 'A';
  /** destination → source, main: refused; errno number (4), UTF message. Nothing was created. */
  public static final byte REFUSE = 'R';
  /** source → destination, any channel: gfn (8), {@link #pageCrc} (4), 4096 data bytes. */
  public static final byte PAGE_DATA = 'P';
  /**
   * source → destination, main: a run of consecutive pages — first gfn (8), count (4, 1 to
   * {@link #MAX_RUN}), a CRC32C per page (4 each), then count × 4096 data bytes back to back, so
   * both sides move the data between the socket and one buffer in bulk (version 2).
   */
  public static final byte PAGE_RUN = 'U';
  /** Most pages in one {@link #PAGE_RUN}: 256 KiB of data. */
  public static final int MAX_RUN = 64;
  /** source → destination, any channel: gfn (8) known to be zero, {@link #pageCrc} of the gfn alone (4, version 2). Never sent for a page that could not be read. */
  public static final byte PAGE_ZERO = 'Z';
  /** destination → source, demand: gfn (8) a fault waits for. */
  public static final byte REQUEST = 'Q';
  /** source → destination, main: every page of the current order was sent; count (8). */
  public static final byte END = 'E';
  /** destination → source, main: the pages still missing, count (4) then gfns (8 each); the next order to stream. */
  public static final byte MISSING = 'M';
  /** destination → source, main: every page is resident. From here on the destination owns the VM. */
  public static final byte COMPLETE = 'C';
  /**
   * destination → source, demand: no body, "still here" (version 3), at least every
   * {@link #KEEPALIVE_MILLIS}. A process that freezes, or a host lost without a FIN, closes nothing:
   * without it the source would wait for ever — for room in a full socket buffer, or for a
   * COMPLETE that never comes.
   */
  public static final byte KEEPALIVE = 'K';
  public static final long KEEPALIVE_MILLIS = 250;

  /**
   * The checksum a page travels with (version 2): CRC32C of its GFN (8 bytes, big-endian) and then
   * its 4096 data bytes ({@code data}'s remaining, not consumed) — a page whose GFN was damaged on
   * the way fails the check like one whose data was, instead of landing intact at the wrong address.
   */
  public static int pageCrc(java.util.zip.CRC32C crc, long gfn, java.nio.ByteBuffer data) {
    crc.reset();
    for (int shift = 56; shift >= 0; shift -= 8) {
      crc.update((int) (gfn >>> shift));
    }
    crc.update(data.duplicate());
    return (int) crc.getValue();
  }

  /** No data: {@link #pageCrc} of a {@link #PAGE_ZERO} covers its GFN alone. */
  public static final java.nio.ByteBuffer NO_DATA = java.nio.ByteBuffer.allocate(0).asReadOnlyBuffer();

  /** Bytes of a {@link #PAGE_ZERO} message. */
  public static final int ZERO_MESSAGE_BYTES = 1 + 8 + 4;

  /** Bytes of a {@link #PAGE_DATA} message. */
  public static final int PAGE_MESSAGE_BYTES = 1 + 8 + 4 + PAGE;
}
