package dev.gmem.migrate;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/** The wait both ends of a migration offer for its outcome, with the errnos of their API. */
final class Completion {
  private Completion() {}

  /** {@code done}'s stats; its failure as thrown (EIO if not a GmemException), EAGAIN after {@code timeout}, EINTR. */
  static MigrationStats await(CompletableFuture<MigrationStats> done, Duration timeout) {
    try {
      return done.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
    } catch (ExecutionException e) {
      throw e.getCause() instanceof GmemException g ? g : new GmemException(Errno.EIO, e.getCause().toString(), e.getCause());
    } catch (TimeoutException e) {
      throw new GmemException(Errno.EAGAIN, "migration not complete after " + timeout);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new GmemException(Errno.EINTR, "interrupted");
    }
  }
}
