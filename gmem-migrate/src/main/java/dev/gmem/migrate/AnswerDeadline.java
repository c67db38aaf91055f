package dev.gmem.migrate;

import dev.gmem.migrate.wire.Frames;
import java.io.IOException;
import java.net.SocketTimeoutException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A deadline on a blocking read of a peer's answer: a blocking {@code SocketChannel} honours no
 * {@code SO_TIMEOUT}, so the connection is closed when the deadline passes, which fails the read.
 * Without it a listener that accepts and never speaks (not gmem, a frozen process) held the caller
 * for ever.
 */
final class AnswerDeadline {
  private final AtomicBoolean state = new AtomicBoolean();

  private AnswerDeadline() {}

  /** Closes {@code f} after {@code millis} unless {@link #cancel} came first (JDK's shared delay timer, no thread of ours). */
  static AnswerDeadline closeAfter(Frames f, long millis) {
    AnswerDeadline d = new AnswerDeadline();
    CompletableFuture.delayedExecutor(millis, TimeUnit.MILLISECONDS).execute(() -> {
      if (d.state.compareAndSet(false, true)) {
        f.close();
      }
    });
    return d;
  }

  /** Stops the deadline; false when it had passed already (the connection is closed). */
  boolean cancel() {
    return state.compareAndSet(false, true);
  }

  /** The peer's next message type within {@code millis}; SocketTimeoutException naming {@code what} otherwise. */
  static byte readType(Frames f, long millis, String what) throws IOException {
    AnswerDeadline d = closeAfter(f, millis);
    try {
      byte type = f.readType();
      if (d.cancel()) {
        return type;
      }
    } catch (IOException e) {
      if (d.cancel()) {
        throw e;
      }
    }
    throw new SocketTimeoutException("no answer to " + what + " within " + millis + " ms: the peer accepted the connection but said nothing");
  }
}
