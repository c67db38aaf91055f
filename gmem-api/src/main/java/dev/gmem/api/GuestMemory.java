package dev.gmem.api;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;

/**
 * A VMM's view of its VM's guest memory by guest physical address, across memslots, like
 * rust-vmm's {@code GuestMemory}/{@code Bytes}: what device emulation uses for descriptor rings,
 * DMA and boot images. Accesses follow the host's rules, as KVM's own accesses through a
 * memslot's {@code userspace_addr} do — not the guest's: a page is reachable exactly when the
 * host may fault it (SHARED, and whatever the arch adds), whatever kind of access a vCPU would
 * make; feature interceptors see each access as a host fault.
 *
 * <p><b>Errors.</b> A byte outside every memslot (a hole) and a byte the host may not fault
 * (private, NONE, leaked) both fail with EFAULT, as {@code kvm_read_guest} and
 * {@code copy_from_user} do; the message names the GPA. {@link #read}, {@link #write} and the
 * scalar accesses check every page first and change nothing when they fail. A call on a dead VM
 * fails with EIO, on a closed one with EBADF.
 *
 * <p><b>Atomicity.</b> The scalar accesses are single-copy atomic and need natural alignment
 * (EINVAL otherwise); loads have acquire and stores release semantics. {@link #read} and
 * {@link #write} hold the invalidate locks of every inode they touch (shared) for the whole copy,
 * so no conversion or punch interleaves with them; the channel copies go page by page.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public interface GuestMemory {

  /** Copies {@code length} bytes at {@code gpa} into {@code dst[index..]}. */
  void read(long gpa, byte[] dst, int index, int length);

  /** Copies {@code src[index..index+length)} to {@code gpa}. */
  void write(long gpa, byte[] src, int index, int length);

  /**
   * Copies {@code dst.remaining()} bytes at {@code gpa} into {@code dst} from its position, which
   * advances: {@link #read(long, byte[], int, int)} with the same checks, locks and errors, for
   * bulk copies (a migration's stream) that go on to a channel or checksum — into a direct buffer
   * an implementation copies straight from guest memory, no heap bounce. The default bounces
   * through a byte[].
   */
  default void read(long gpa, ByteBuffer dst) {
    byte[] b = new byte[dst.remaining()];
    read(gpa, b, 0, b.length);
    dst.put(b);
  }

  /**
   * Copies {@code src.remaining()} bytes from {@code src}'s position (which advances) to
   * {@code gpa}: {@link #write(long, byte[], int, int)} with the same checks, locks and errors.
   * The default bounces through a byte[].
   */
  default void write(long gpa, ByteBuffer src) {
    byte[] b = new byte[src.remaining()];
    src.duplicate().get(b);
    write(gpa, b, 0, b.length);
    src.position(src.limit());
  }

  /** Loads the little-endian {@code int} at {@code gpa} (4-byte aligned). */
  int loadInt(long gpa);

  /** Stores {@code value} little-endian at {@code gpa} (4-byte aligned). */
  void storeInt(long gpa, int value);

  /** Loads the little-endian {@code long} at {@code gpa} (8-byte aligned). */
  long loadLong(long gpa);

  /** Stores {@code value} little-endian at {@code gpa} (8-byte aligned). */
  void storeLong(long gpa, long value);

  /** Atomically replaces the {@code int} at {@code gpa} if it equals {@code expected}. */
  boolean compareAndSetInt(long gpa, int expected, int value);

  /** Atomically replaces the {@code long} at {@code gpa} if it equals {@code expected}. */
  boolean compareAndSetLong(long gpa, long expected, long value);

  /**
   * Reads up to {@code length} bytes from {@code src} into guest memory at {@code gpa}, page by
   * page, until the channel has no more or {@code length} is reached; returns the bytes placed.
   * Like {@code read(2)} into a mapping, a page that turns out unreachable after some bytes were
   * placed ends the call with the count so far; before any, it throws.
   */
  long readFrom(ReadableByteChannel src, long gpa, long length) throws IOException;

  /** Writes {@code length} bytes of guest memory at {@code gpa} to {@code dst}; returns the bytes written, as {@link #readFrom}. */
  long writeTo(WritableByteChannel dst, long gpa, long length) throws IOException;

  /** Whether every byte of {@code [gpa, gpa+length)} lies in a memslot and the host may fault it now. */
  boolean isAccessible(long gpa, long length);
}
