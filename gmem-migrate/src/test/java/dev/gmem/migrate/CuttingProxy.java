package dev.gmem.migrate;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A TCP proxy that breaks the link: once armed, every connection through it is cut (both sockets
 * closed, mid-message as it happens) after a random number of forwarded bytes, until it has cut
 * {@code cuts} times; then it forwards faithfully.
 */
final class CuttingProxy implements AutoCloseable {
  private final ServerSocketChannel listener;
  private final InetSocketAddress target;
  private final Random random;
  private final int maxBytes;
  private final int wanted;
  private final AtomicInteger cuts = new AtomicInteger();
  private final AtomicLong forwarded = new AtomicLong();
  private volatile boolean armed;

  CuttingProxy(InetSocketAddress target, long seed, int cuts, int maxBytes) throws IOException {
    this.target = target;
    this.random = new Random(seed);
    this.wanted = cuts;
    this.maxBytes = maxBytes;
    this.listener = ServerSocketChannel.open().bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
    Thread t = new Thread(this::acceptLoop, "cutting-proxy");
    t.setDaemon(true);
    t.start();
  }

  int port() throws IOException {
    return ((InetSocketAddress) listener.getLocalAddress()).getPort();
  }

  void arm() {
    armed = true;
  }

  int cuts() {
    return cuts.get();
  }

  private void acceptLoop() {
    while (listener.isOpen()) {
      try {
        SocketChannel a = listener.accept();
        SocketChannel b = SocketChannel.open(target);
        new Pair(a, b).start();
      } catch (IOException e) {
        return;
      }
    }
  }

  private final class Pair {
    final SocketChannel a;
    final SocketChannel b;
    final AtomicLong budget = new AtomicLong(-1);

    Pair(SocketChannel a, SocketChannel b) {
      this.a = a;
      this.b = b;
    }

    void start() {
      pump(a, b);
      pump(b, a);
    }

    private void pump(SocketChannel from, SocketChannel to) {
      Thread t = new Thread(() -> {
        ByteBuffer buf = ByteBuffer.allocateDirect(16 << 10);
        try {
          while (true) {
            buf.clear();
            if (from.read(buf) < 0) {
              break;
            }
            buf.flip();
            if (armed && cuts.get() < wanted) {
              long left = budget.updateAndGet(v -> v >= 0 ? v : nextBudget());
              if (buf.remaining() >= left) {
                buf.limit(buf.position() + (int) left);
                while (buf.hasRemaining()) {
                  to.write(buf);
                }
                cuts.incrementAndGet();
                break; // cut here, mid-message or not
              }
              budget.addAndGet(-buf.remaining());
            }
            forwarded.addAndGet(buf.remaining());
            while (buf.hasRemaining()) {
              to.write(buf);
            }
          }
        } catch (IOException e) {
          // the other direction cut or the peer closed
        }
        close(a);
        close(b);
      }, "cutting-proxy-pump");
      t.setDaemon(true);
      t.start();
    }
  }

  private synchronized long nextBudget() {
    return random.nextInt(maxBytes);
  }

  private static void close(SocketChannel c) {
    try {
      c.close();
    } catch (IOException ignored) {
      // cut
    }
  }

  @Override
  public void close() throws IOException {
    listener.close();
  }
}
