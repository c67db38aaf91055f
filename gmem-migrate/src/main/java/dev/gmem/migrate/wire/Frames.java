package dev.gmem.migrate.wire;

import dev.gmem.api.Api;
import java.io.EOFException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.atomic.LongAdder;

/**
 * One connection of the protocol: a blocking NIO {@link SocketChannel} with a direct buffer each
 * way (the kernel copies straight from and to them; no heap bounce). Writers are synchronized, so
 * two threads may send on one connection; a single thread reads. Messages are buffered until
 * {@link #flush} or until the buffer is full.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public final class Frames implements AutoCloseable {
  private static final int BUFFER = 256 << 10;

  private final SocketChannel channel;
  private final ByteBuffer in = ByteBuffer.allocateDirect(BUFFER).flip();
  private final ByteBuffer out = ByteBuffer.allocateDirect(BUFFER);
  private final LongAdder bytesIn = new LongAdder();
  private final LongAdder bytesOut = new LongAdder();
  private final java.util.zip.CRC32C zeroCrc = new java.util.zip.CRC32C();

  public Frames(SocketChannel channel) throws IOException {
    this.channel = channel;
    channel.configureBlocking(true);
    channel.setOption(StandardSocketOptions.TCP_NODELAY, true);
  }

  /** Connects to {@code address} within {@code timeoutMillis}. */
  public static Frames connect(SocketAddress address, int timeoutMillis) throws IOException {
    SocketChannel ch = SocketChannel.open();
    try {
      ch.socket().connect(address, timeoutMillis);
      return new Frames(ch);
    } catch (IOException e) {
      ch.close();
      throw e;
    }
  }

  public static Frames connect(String host, int port, int timeoutMillis) throws IOException {
    return connect(new InetSocketAddress(host, port), timeoutMillis);
  }

  public long bytesIn() {
    return bytesIn.sum();
  }

  public long bytesOut() {
    return bytesOut.sum();
  }

  // ---- writing ---------------------------------------------------------------------------------

  private void room(int n) throws IOException {
    if (out.remaining() < n) {
      drain();
    }
  }

  private void drain() throws IOException {
    out.flip();
    while (out.hasRemaining()) {
      bytesOut.add(channel.write(out));
    }
    out.clear();
  }

  public synchronized void flush() throws IOException {
    drain();
  }

  /** The hello that opens every connection; flushed. */
  public synchronized void hello(byte kind, long session) throws IOException {
    room(Wire.HELLO_BYTES);
    out.putInt(Wire.MAGIC).putShort(Wire.VERSION).put(kind).putLong(session);
    drain();
  }

  /** A page: {@code data} holds 4096 bytes from its position (not consumed). */
  public synchronized void page(long gfn, ByteBuffer data, int crc32c) throws IOException {
    room(Wire.PAGE_MESSAGE_BYTES);
    out.put(Wire.PAGE_DATA).putLong(gfn).putInt(crc32c);
    ByteBuffer d = data.duplicate();
    d.limit(d.position() + Wire.PAGE);
    out.put(d);
  }

  /**
   * A {@link Wire#PAGE_RUN}: the header and CRCs go through the send buffer, the data straight from
   * {@code data} ({@code count} × 4096 bytes from its position, not consumed; a direct buffer is
   * not copied again) in the same gathering write. Flushes.
   */
  public synchronized void run(long first, int count, int[] crc32c, ByteBuffer data) throws IOException {
    if (count < 1 || count > Wire.MAX_RUN || data.remaining() < count * Wire.PAGE) {
      throw new IllegalArgumentException("a run is 1 to " + Wire.MAX_RUN + " pages, got " + count + " and " + data.remaining() + " bytes");
    }
    room(1 + 8 + 4 + 4 * count);
    out.put(Wire.PAGE_RUN).putLong(first).putInt(count);
    for (int i = 0; i < count; i++) {
      out.putInt(crc32c[i]);
    }
    ByteBuffer d = data.duplicate();
    d.limit(d.position() + count * Wire.PAGE);
    ByteBuffer[] both = {out.flip(), d};
    while (d.hasRemaining()) {
      bytesOut.add(channel.write(both));
    }
    out.clear();
  }

  public synchronized void zero(long gfn) throws IOException {
    room(Wire.ZERO_MESSAGE_BYTES);
    out.put(Wire.PAGE_ZERO).putLong(gfn).putInt(Wire.pageCrc(zeroCrc, gfn, Wire.NO_DATA));
  }

  public synchronized void request(long gfn) throws IOException {
    room(9);
    out.put(Wire.REQUEST).putLong(gfn);
  }

  /** A {@link Wire#KEEPALIVE}; flushed. */
  public synchronized void keepalive() throws IOException {
    room(1);
    out.put(Wire.KEEPALIVE);
    drain();
  }

  public synchronized void end(long count) throws IOException {
    room(9);
    out.put(Wire.END).putLong(count);
    drain();
  }

  public synchronized void complete() throws IOException {
    room(1);
    out.put(Wire.COMPLETE);
    drain();
  }

  public synchronized void accept(long session) throws IOException {
    room(9);
    out.put(Wire.ACCEPT).putLong(session);
    drain();
  }

  public synchronized void refuse(int errno, String why) throws IOException {
    byte[] msg = why.getBytes(StandardCharsets.UTF_8);
    room(9 + msg.length);
    out.put(Wire.REFUSE).putInt(errno).putInt(msg.length).put(msg);
    drain();
  }

  public synchronized void handshake(byte[] encoded) throws IOException {
    out.put(Wire.HANDSHAKE).putInt(encoded.length);
    ByteBuffer b = ByteBuffer.wrap(encoded);
    while (b.hasRemaining()) {
      room(1);
      int n = Math.min(out.remaining(), b.remaining());
      out.put(b.slice().limit(n));
      b.position(b.position() + n);
    }
    drain();
  }

  public synchronized void missing(long[] gfns) throws IOException {
    room(5);
    out.put(Wire.MISSING).putInt(gfns.length);
    for (long g : gfns) {
      room(8);
      out.putLong(g);
    }
    drain();
  }

  // ---- reading (one thread) ----------------------------------------------------------------------

  private void need(int n) throws IOException {
    while (in.remaining() < n) {
      in.compact();
      int r = channel.read(in);
      in.flip();
      if (r < 0) {
        throw new EOFException("connection closed by the peer");
      }
      bytesIn.add(r);
    }
  }

  /** Bytes received and not yet read: whether the next message can be read without blocking. */
  public int buffered() {
    return in.remaining();
  }

  /** The peer's hello: its kind and session, after checking magic and version. */
  public record Hello(byte kind, long session) {}

  public Hello readHello() throws IOException {
    need(Wire.HELLO_BYTES);
    int magic = in.getInt();
    short version = in.getShort();
    byte kind = in.get();
    long session = in.getLong();
    if (magic != Wire.MAGIC) {
      throw new ProtocolException("not a gmem migration peer (magic 0x" + Integer.toHexString(magic) + ")");
    }
    if (version != Wire.VERSION) {
      throw new ProtocolException("protocol version " + version + " is not supported (this side speaks " + Wire.VERSION + ")");
    }
    return new Hello(kind, session);
  }

  public byte readType() throws IOException {
    need(1);
    return in.get();
  }

  public long readLong() throws IOException {
    need(8);
    return in.getLong();
  }

  public int readInt() throws IOException {
    need(4);
    return in.getInt();
  }

  public byte[] readBytes(int n) throws IOException {
    if (n < 0 || n > 64 << 20) {
      throw new ProtocolException("bad length " + n);
    }
    byte[] b = new byte[n];
    int at = 0;
    while (at < n) {
      need(1);
      int k = Math.min(in.remaining(), n - at);
      in.get(b, at, k);
      at += k;
    }
    return b;
  }

  public String readUtf(int n) throws IOException {
    return new String(readBytes(n), StandardCharsets.UTF_8);
  }

  /**
   * The 4096 data bytes of a page message, as a view of the receive buffer valid until the next
   * read (no copy).
   */
  public ByteBuffer readPage() throws IOException {
    need(Wire.PAGE);
    ByteBuffer page = in.slice().limit(Wire.PAGE);
    in.position(in.position() + Wire.PAGE);
    return page;
  }

  /**
   * Fills {@code dst} from the connection: what is buffered first, then straight from the socket
   * into {@code dst} (a direct buffer: the kernel's copy is the only one). Each read also takes
   * up to {@link #SPILL} bytes past {@code dst} into the receive buffer, so the next message's
   * header comes with it and only that little is copied twice.
   */
  public void readFully(ByteBuffer dst) throws IOException {
    if (in.hasRemaining() && dst.hasRemaining()) {
      int k = Math.min(in.remaining(), dst.remaining());
      dst.put(in.slice().limit(k));
      in.position(in.position() + k);
    }
    ByteBuffer[] both = {dst, in};
    while (dst.hasRemaining()) {
      in.clear().limit(SPILL); // empty: everything buffered went into dst above
      long r = channel.read(both);
      in.flip();
      if (r < 0) {
        throw new EOFException("connection closed by the peer");
      }
      bytesIn.add(r);
    }
  }

  /** Bytes a bulk read may take beyond its buffer: a run's header and a little. */
  private static final int SPILL = 4 << 10;

  /** Closes the connection (a blocked reader or writer on it fails at once). */
  @Override
  public void close() {
    try {
      channel.close();
    } catch (IOException ignored) {
      // closing
    }
  }

  /** A peer that does not speak this protocol. */
  public static final class ProtocolException extends IOException {
    public ProtocolException(String why) {
      super(why);
    }
  }
}
